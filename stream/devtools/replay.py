"""Replaying embeddings through stage 1's own learning code, as ``stream eval`` and its drift check do."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from stream.core.clustering import OnlineClusterer
from stream.core.learning import Learner, Sample
from stream.core.model_owner import ModelOwner, run_locally


def sample_rows(n: int, limit: int | None, seed: int) -> list[int]:
    """``limit`` row indices out of ``n`` (all if ``limit`` is None or 0), reproducible and shuffled.

    >>> sample_rows(5, None, 0) == sample_rows(5, 0, 0) and sorted(sample_rows(5, None, 0)) == [0, 1, 2, 3, 4]
    True
    >>> len(sample_rows(100, 7, 1)), sample_rows(100, 7, 1) == sample_rows(100, 7, 1)
    (7, True)
    """
    k = n if not limit or limit >= n else limit
    return random.Random(seed).sample(range(n), k)


def stream_assignments(
    x: np.ndarray,
    *,
    n_clusters: int,
    warmup: int,
    batch_size: int,
    half_life_events: float = 0.0,
    reassignment_ratio: float = 0.01,
    seed: int = 0,
    tokens: Sequence[Sequence[str]] | None = None,
) -> tuple[np.ndarray, ModelOwner]:
    """Replay embeddings in order through the service's own learner and model owner.

    Returns each row's cluster at stream time and the owner (its clusterer and keyword
    counts). Rows of the warm-up buffer get the warm-started centres' clusters (they are
    published right after the first fit); afterwards each micro-batch is assigned with the
    current version, then its statistics are merged, exactly as stage 1 and the owner do.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(x)
    warmup = min(max(warmup, n_clusters), n)
    owner = ModelOwner(OnlineClusterer(
        k=n_clusters, warmup=warmup, seed=seed, half_life_events=half_life_events, reassignment_ratio=reassignment_ratio
    ), encoder_version="eval")
    learner = Learner("eval")
    samples = [Sample("eval/0", i, i, row, tokens[i] if tokens is not None else ()) for i, row in enumerate(x)]
    out = np.empty(n, dtype=np.int64)
    for start, end in [(0, warmup), *((s, min(s + batch_size, n)) for s in range(warmup, n, batch_size))]:
        out[start:end] = run_locally(owner, learner, samples[start:end], force=True).labels
    return out, owner
