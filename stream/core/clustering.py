"""Online interest clusters around scikit-learn's ``MiniBatchKMeans.partial_fit``.

No I/O: the caller feeds embeddings and persists :meth:`OnlineClusterer.snapshot`.
A cold ``partial_fit`` picks centres from one small batch; instead the first
``warmup`` embeddings are clustered with a full ``KMeans`` (several restarts) and the
online model starts from those centres. Counts can decay (Spark StreamingKMeans'
half-life) so that old topics fade and dead centres get reassigned.
"""

from __future__ import annotations

import pickle
import uuid
from dataclasses import dataclass, field

import numpy as np
import sklearn
from sklearn.cluster import KMeans, MiniBatchKMeans

SNAPSHOT_FORMAT = 1


class SnapshotMismatch(ValueError):
    """A snapshot was written by another embedding space or library version."""


@dataclass
class OnlineClusterer:
    """k interest clusters learned from a stream of L2-normalised embeddings."""

    k: int
    warmup: int
    seed: int = 0
    half_life_events: float = 0.0
    reassignment_ratio: float = 0.01
    model: MiniBatchKMeans | None = None
    lineage: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    updates: int = 0
    seen: int = 0

    @property
    def fitted(self) -> bool:
        return self.model is not None

    @property
    def version(self) -> str:
        """Changes with every update: which centres produced an assignment."""
        return f"kmeans-k{self.k}-{self.lineage}#{self.updates}"

    @property
    def centers(self) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("clusterer not fitted yet")
        return self.model.cluster_centers_

    def warm_start(self, x: np.ndarray) -> None:
        """Fit the first centres on a buffer of at least ``k`` embeddings."""
        x = _as_rows(x)
        if len(x) < self.k:
            raise ValueError(f"warm start needs at least k={self.k} embeddings, got {len(x)}")
        offline = KMeans(n_clusters=self.k, n_init=20, random_state=self.seed).fit(x)
        self.model = MiniBatchKMeans(
            n_clusters=self.k,
            init=offline.cluster_centers_.astype(np.float32),
            n_init=1,
            random_state=self.seed,
            reassignment_ratio=self.reassignment_ratio,
            batch_size=max(len(x), 256),
        )
        self.model.partial_fit(x)
        self.updates = 1
        self.seen = len(x)

    def learn(self, x: np.ndarray) -> None:
        """One online step; decayed counts let centres keep moving (forgetting)."""
        x = _as_rows(x)
        if self.model is None:
            raise RuntimeError("clusterer not fitted yet: warm_start first")
        if len(x) == 0:
            return
        if self.half_life_events > 0:
            self.model._counts *= np.float32(0.5 ** (len(x) / self.half_life_events))  # sklearn's per-centre learning counts
        self.model.partial_fit(x)
        self.updates += 1
        self.seen += len(x)

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest cluster and cosine similarity to its centre, per row."""
        x = _as_rows(x)
        centers = self.centers
        sims = x @ (centers / np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-12)).T
        labels = np.argmax(sims, axis=1)
        return labels.astype(np.int64), sims[np.arange(len(x)), labels]

    def sizes(self) -> np.ndarray:
        """Current (decayed) learning counts per cluster."""
        if self.model is None:
            return np.zeros(self.k, dtype=np.float32)
        return np.asarray(self.model._counts, dtype=np.float32)

    def snapshot(self, **extra: object) -> bytes:
        """Bytes that :meth:`restore` turns back into an identical clusterer (same sklearn version)."""
        return pickle.dumps(
            {"format": SNAPSHOT_FORMAT, "sklearn": sklearn.__version__, "state": self, "extra": extra},
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @staticmethod
    def restore(data: bytes) -> tuple[OnlineClusterer, dict]:
        """Inverse of :meth:`snapshot`; only for files this service wrote itself (pickle)."""
        payload = pickle.loads(data)  # noqa: S301 - local checkpoint written by this process, never topic bytes
        if payload.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotMismatch(f"snapshot format {payload.get('format')} != {SNAPSHOT_FORMAT}")
        if payload.get("sklearn") != sklearn.__version__:
            raise SnapshotMismatch(f"snapshot from scikit-learn {payload.get('sklearn')}, running {sklearn.__version__}")
        return payload["state"], payload["extra"]


def _as_rows(x: np.ndarray) -> np.ndarray:
    """float32, C-contiguous 2-D: sklearn fixes the dtype at the first fit and refuses mixing."""
    return np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
