"""``python -m bench`` runs the benchmark command."""

import sys

from bench.cli import main

sys.exit(main())
