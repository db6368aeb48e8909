"""``python -m stream`` is the ``stream`` command."""

import sys

from stream.cli import main

sys.exit(main())
