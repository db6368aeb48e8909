"""Learning of stage 1: warm-start buffering, online clustering and keyword counts, idempotent per offset.

Texts wait in a buffer until there are ``clusterer.warmup`` of them (or at least k when a
fit is forced); then the clusterer warm-starts on the buffer. After that each micro-batch
is learned, then assigned, so that keyword counts and published clusters share the labels.
Per source partition the learner remembers the last offset it learned from: a redelivered
text is assigned but not learned again, so a restart never re-applies learning that a
checkpoint already holds. ``stream eval`` drives this same class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.core.clustering import OnlineClusterer
from stream.core.keywords import MIN_KEYWORD_USERS, ClusterTerms

MAX_TERMS_PER_CLUSTER = 500


@dataclass(frozen=True, slots=True)
class Sample:
    """One encoded text; ``payload`` is the caller's own object (it travels unchanged)."""

    source: str
    offset: int
    ts_ms: int
    embedding: np.ndarray
    tokens: Sequence[str]
    payload: Any = None
    user: str | None = None  # pseudonymous writer: a keyword needs MIN_KEYWORD_USERS of them


@dataclass
class Step:
    """What one micro-batch produced: the samples to publish with their clusters, and how many are held."""

    assigned: list[Sample] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    held: int = 0


class Learner:
    """Owns the clusterer, the keyword counts and the learned offsets; no I/O."""

    def __init__(self, clusterer: OnlineClusterer, *, max_terms_per_cluster: int = MAX_TERMS_PER_CLUSTER) -> None:
        self.clusterer = clusterer
        self.max_terms_per_cluster = max_terms_per_cluster
        self.terms = ClusterTerms()
        self.learned: dict[str, int] = {}
        self.pending: list[Sample] = []

    def state(self) -> dict[str, Any]:
        return {"learned": dict(self.learned), "terms": self.terms.to_dict()}

    def load_state(self, clusterer: OnlineClusterer, state: Mapping[str, Any]) -> None:
        self.clusterer = clusterer
        self.learned = dict(state["learned"])
        self.terms = ClusterTerms.from_dict(state["terms"])

    def oldest_held(self, fresh: Sequence[Sample]) -> int | None:
        """Event time of the oldest text that would still be held after ``fresh`` (the watermark must wait)."""
        if self.clusterer.fitted:
            return None
        times = [s.ts_ms for s in (*self.pending, *fresh)]
        return min(times) if times else None

    def held_positions(self) -> frozenset[tuple[str, int]]:
        """("source", offset) of the texts waiting for the warm start."""
        return frozenset((s.source, s.offset) for s in self.pending)

    def step(self, fresh: Sequence[Sample], *, force_fit: bool = False) -> Step:
        """Learn what is new in ``fresh`` and assign all of it; before the warm start, buffer it."""
        new: list[Sample] = []
        if not self.clusterer.fitted:
            buffered = {(s.source, s.offset) for s in self.pending}
            self.pending.extend(s for s in fresh if (s.source, s.offset) not in buffered)
            if not (len(self.pending) >= self.clusterer.warmup or (force_fit and len(self.pending) >= self.clusterer.k)):
                return Step(held=len(self.pending))
            self.clusterer.warm_start(np.stack([s.embedding for s in self.pending]))
            fresh, new, self.pending = self.pending, self.pending, []
        elif fresh:
            new = [s for s in fresh if s.offset > self.learned.get(s.source, -1)]
            if new:
                self.clusterer.learn(np.stack([s.embedding for s in new]))
        if not fresh:
            return Step()
        labels, _ = self.clusterer.assign(np.stack([s.embedding for s in fresh]))
        learned_now = {id(s) for s in new}
        self._learn_terms([(s, int(label)) for s, label in zip(fresh, labels) if id(s) in learned_now])
        return Step(assigned=list(fresh), labels=labels)

    def keywords(self, n: int) -> dict[int, list[str]]:
        """Top ``n`` c-TF-IDF keywords per cluster."""
        return {c: [w for w, _ in kws] for c, kws in self.terms.top_keywords(n, min_users=MIN_KEYWORD_USERS).items()}

    def forget(self, contributions: Mapping[str, Mapping[str, float]], user: str | None = None) -> None:
        """Take a forgotten user's own keyword counts (``{cluster: {token: count}}``) back out, and the user
        out of the writers of every word."""
        for cluster, counts in contributions.items():
            for token, n in counts.items():
                self.terms.remove(int(cluster), [token], weight=float(n))
        if user is not None:
            self.terms.forget_user(user)

    def _learn_terms(self, learned: Sequence[tuple[Sample, int]]) -> None:
        """Keyword counts follow the clusters: same decay, only for texts learned for the first time."""
        if not learned:
            return
        if self.clusterer.half_life_events > 0:
            self.terms.decay(0.5 ** (len(learned) / self.clusterer.half_life_events))
        for s, label in learned:
            self.terms.add(label, s.tokens, user=s.user)
            self.learned[s.source] = max(self.learned.get(s.source, -1), s.offset)
        self.terms.prune(self.max_terms_per_cluster)
