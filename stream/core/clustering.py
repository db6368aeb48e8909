"""Online interest clusters around scikit-learn's ``MiniBatchKMeans.partial_fit``.

No I/O: the caller feeds embeddings and persists :meth:`OnlineClusterer.to_state` (plain,
JSON-safe data: it travels on the model topic, where pickle would let any producer run code).
A cold ``partial_fit`` picks centres from one small batch; instead the first
``warmup`` embeddings are clustered with a full ``KMeans`` (several restarts) and the
online model starts from those centres. Counts can decay (Spark StreamingKMeans'
half-life) so that old topics fade and dead centres get reassigned.

Several workers share one model: each sends per-cluster sums and counts, and the owner
feeds every cluster's mean with its count as ``sample_weight`` to the same ``partial_fit``
(:meth:`OnlineClusterer.learn_summary`). MiniBatchKMeans moves a centre by
``(centre * old_count + sum) / (old_count + n)``, so a weighted mean is exactly the batch it
summarises; the models are never averaged.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn
from sklearn.cluster import KMeans, MiniBatchKMeans

SNAPSHOT_FORMAT = 2  # 2: JSON-safe state (1 was a pickle)


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
            compute_labels=False,  # labels come from assign(); computing them again doubles each step's cost
        )
        self.model.partial_fit(x)
        self.model._n_threads = 1  # one small step per call: OpenMP threads cost more than they save (ms per call)
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

    def learn_summary(self, sums: np.ndarray, counts: np.ndarray) -> None:
        """One online step from per-cluster sums and counts (another process assigned the texts).

        Decay is by the number of texts summarised, as in :meth:`learn`.
        """
        if self.model is None:
            raise RuntimeError("clusterer not fitted yet: warm_start first")
        sums = np.asarray(sums, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.float64)
        if sums.shape != (self.k, self.centers.shape[1]) or counts.shape != (self.k,):
            raise ValueError(f"summary shapes {sums.shape}, {counts.shape} do not fit k={self.k}")
        used = counts > 0
        n = float(counts[used].sum())
        if n <= 0:
            return
        if self.half_life_events > 0:
            self.model._counts *= np.float32(0.5 ** (n / self.half_life_events))
        means = sums[used] / counts[used, None]
        self.model.partial_fit(_as_rows(means), sample_weight=counts[used].astype(np.float32))
        self.updates += 1
        self.seen += int(round(n))

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

    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (random state included), as JSON-safe data."""
        state: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT, "sklearn": sklearn.__version__, "k": self.k, "warmup": self.warmup,
            "seed": self.seed, "half_life_events": self.half_life_events,
            "reassignment_ratio": self.reassignment_ratio, "lineage": self.lineage,
            "updates": self.updates, "seen": self.seen, "fitted": self.model is not None,
        }
        if self.model is not None:
            m = self.model
            kind, keys, pos, has_gauss, gauss = m._random_state.get_state()
            state.update(
                centers=encode_array(m.cluster_centers_), counts=encode_array(m._counts),
                batch_size=m.batch_size, since_reassign=int(m._n_since_last_reassign), steps=int(m.n_steps_),
                random_state=[kind, encode_array(np.asarray(keys, dtype=np.uint32)), int(pos), int(has_gauss), float(gauss)],
            )
        return state

    @staticmethod
    def from_state(state: Mapping[str, Any]) -> OnlineClusterer:
        """Inverse of :meth:`to_state`; refuses another format (the caller starts afresh)."""
        if state.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotMismatch(f"clustering state format {state.get('format')} != {SNAPSHOT_FORMAT}")
        c = OnlineClusterer(
            k=int(state["k"]), warmup=int(state["warmup"]), seed=int(state["seed"]),
            half_life_events=float(state["half_life_events"]), reassignment_ratio=float(state["reassignment_ratio"]),
            lineage=str(state["lineage"]), updates=int(state["updates"]), seen=int(state["seen"]),
        )
        if state.get("fitted"):
            centers = decode_array(state["centers"], np.float32).reshape(c.k, -1)
            counts = decode_array(state["counts"], np.float32)
            if counts.shape != (c.k,):
                raise SnapshotMismatch(f"{counts.shape[0]} counts for k={c.k}")
            m = MiniBatchKMeans(n_clusters=c.k, init=centers, n_init=1, random_state=c.seed, compute_labels=False,
                                reassignment_ratio=c.reassignment_ratio, batch_size=int(state["batch_size"]))
            kind, keys, pos, has_gauss, gauss = state["random_state"]
            rng = np.random.RandomState()
            rng.set_state((kind, decode_array(keys, np.uint32), pos, has_gauss, gauss))
            # The attributes partial_fit reads on a fitted model (scikit-learn 1.x); tests pin them.
            m.cluster_centers_, m._counts = centers.copy(), counts.copy()
            m._random_state, m._n_since_last_reassign, m.n_steps_ = rng, int(state["since_reassign"]), int(state["steps"])
            m._n_threads, m._batch_size, m.n_features_in_ = 1, m.batch_size, centers.shape[1]
            m._n_features_out = c.k
            c.model = m
        return c


def encode_array(x: np.ndarray) -> str:
    """Little-endian bytes of an array as base64 (4 bytes per float32 instead of ~20 as JSON text)."""
    return base64.b64encode(np.ascontiguousarray(x).astype(np.asarray(x).dtype.newbyteorder("<")).tobytes()).decode()


def decode_array(text: str, dtype: type) -> np.ndarray:
    """Inverse of :func:`encode_array` for a known dtype (1-D; the caller reshapes)."""
    return np.frombuffer(base64.b64decode(text, validate=True), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def _as_rows(x: np.ndarray) -> np.ndarray:
    """float32, C-contiguous 2-D: sklearn fixes the dtype at the first fit and refuses mixing."""
    return np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
