"""Progress bars for the long commands (produce, eval, bench): rate and ETA, on a terminal only.

tqdm draws on stderr and only when stderr is a terminal, so logs, pipes and CI output stay
free of carriage-return noise while whatever the command prints on stdout stays clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from stream.worker.encoder import Encoder

T = TypeVar("T")


def progress(total: float | None, desc: str, unit: str = "it") -> tqdm:
    """A bar with count, rate and ETA (ETA once ``total`` is known); a no-op object off a terminal."""
    return tqdm(
        total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True, smoothing=0.1,
        file=sys.stderr, disable=not sys.stderr.isatty(), leave=True,
    )


def track(items: Iterable[T], total: float | None, desc: str, unit: str = "it") -> Iterable[T]:
    """``items`` with a progress bar advancing once per item."""
    with progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)


def encode_in_chunks(encoder: Encoder, texts: Sequence[str], desc: str = "encode", chunk: int = 512) -> np.ndarray:
    """``encoder.encode(texts)`` a chunk at a time, so a bar can advance (per chunk, the encoder still
    sorts texts by length into token-budget batches; embeddings do not depend on the batching)."""
    parts = []
    with progress(len(texts), desc, unit="text") as bar:
        for start in range(0, len(texts), chunk):
            parts.append(encoder.encode(texts[start:start + chunk]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else encoder.encode([])
