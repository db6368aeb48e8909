"""Learning of stage 1: warm-start buffering, online clustering and keyword counts, idempotent per offset.

Texts wait in a buffer until there are ``clusterer.warmup`` of them (or at least k when a
fit is forced); then the clusterer warm-starts on the buffer. After that each micro-batch
is learned, then assigned, so that keyword counts and published clusters share the labels.
Per source partition the learner remembers the last offset it learned from: a redelivered
text is assigned but not learned again, so a restart never re-applies learning that a
checkpoint already holds. ``stream eval`` drives this same class.

Beside the clusters it keeps what makes them readable: the coarse topics (centroids grouped
by :func:`~stream.core.coarse.group_clusters`, recomputed whenever the centres move) and a
few representative snippets per cluster (the masked texts closest to the centre when they
were learned; a forgotten user's snippets are dropped with their keyword counts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.core.clustering import OnlineClusterer
from stream.core.coarse import group_clusters, topic_terms
from stream.core.keywords import GENERIC_TERMS, MIN_KEYWORD_USERS, ClusterTerms

MAX_TERMS_PER_CLUSTER = 500
EXAMPLES_PER_CLUSTER = 3
SNIPPET_CHARS = 80


@dataclass(frozen=True, slots=True)
class Sample:
    """One encoded text; ``payload`` is the caller's own object (it travels unchanged)."""

    source: str
    offset: int
    ts_ms: int
    embedding: np.ndarray
    tokens: Sequence[str]
    payload: Any = None
    text: str = ""  # masked text, a snippet candidate
    user: str | None = None  # pseudonymous writer: a keyword needs MIN_KEYWORD_USERS of them


@dataclass
class Step:
    """What one micro-batch produced: the samples to publish with their clusters, and how many are held."""

    assigned: list[Sample] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    held: int = 0


def generic_clusters(terms: ClusterTerms, n: int = 10) -> set[int]:
    """Clusters that say how rather than what: at least half of their top ``n`` keywords are generic review words."""
    ranked = terms.top_keywords(n)
    return {c for c, kws in ranked.items() if kws and sum(w in GENERIC_TERMS for w, _ in kws) * 2 >= len(kws)}


class Learner:
    """Owns the clusterer, the keyword counts and the learned offsets; no I/O."""

    def __init__(
        self, clusterer: OnlineClusterer, *, topics: int = 0, max_terms_per_cluster: int = MAX_TERMS_PER_CLUSTER
    ) -> None:
        self.clusterer = clusterer
        self.topics = topics
        self.max_terms_per_cluster = max_terms_per_cluster
        self.terms = ClusterTerms()
        self.learned: dict[str, int] = {}
        self.pending: list[Sample] = []
        self.topic_of: dict[int, int] = {}
        self.examples: dict[int, list[tuple[float, str, str]]] = {}  # cluster -> (similarity, snippet, user)

    def state(self) -> dict[str, Any]:
        return {"learned": dict(self.learned), "terms": self.terms.to_dict(),
                "examples": {str(c): [list(e) for e in ex] for c, ex in self.examples.items()}}

    def load_state(self, clusterer: OnlineClusterer, state: Mapping[str, Any]) -> None:
        self.clusterer = clusterer
        self.learned = dict(state["learned"])
        self.terms = ClusterTerms.from_dict(state["terms"])
        self.examples = {int(c): [(float(s), str(t), str(u)) for s, t, u in ex]
                         for c, ex in state.get("examples", {}).items()}
        self._regroup()

    def oldest_held(self, fresh: Sequence[Sample]) -> int | None:
        """Event time of the oldest text that would still be held after ``fresh`` (the watermark must wait)."""
        if self.clusterer.fitted:
            return None
        times = [s.ts_ms for s in (*self.pending, *fresh)]
        return min(times) if times else None

    def drop_held(self, covered: Callable[[str | None, int], bool]) -> None:
        """Stop holding texts a forget request covers: they are never learned, and their offsets may be acked."""
        self.pending = [s for s in self.pending if not covered(s.user, s.ts_ms)]

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
        labels, sims = self.clusterer.assign(np.stack([s.embedding for s in fresh]))
        learned_now = {id(s) for s in new}
        first_time = [(s, int(label), float(sim)) for s, label, sim in zip(fresh, labels, sims) if id(s) in learned_now]
        self._learn_terms([(s, label) for s, label, _ in first_time])
        self._keep_examples(first_time)
        if new:
            self._regroup()
        return Step(assigned=list(fresh), labels=labels)

    def keywords(self, n: int, generic_out: bool = True) -> dict[int, list[str]]:
        """Top ``n`` c-TF-IDF keywords per cluster (generic review words left out unless ``generic_out`` is False)."""
        ranked = self.terms.top_keywords(n, min_users=MIN_KEYWORD_USERS, exclude=GENERIC_TERMS if generic_out else frozenset())
        return {c: [w for w, _ in kws] for c, kws in ranked.items()}

    def forget(self, contributions: Mapping[str, Mapping[str, float]], user: str | None = None) -> None:
        """Take a forgotten user's own keyword counts (``{cluster: {token: count}}``) back out, and the user
        out of the writers of every word."""
        for cluster, counts in contributions.items():
            for token, n in counts.items():
                self.terms.remove(int(cluster), [token], weight=float(n))
        if user is not None:
            self.terms.forget_user(user)
            self.examples = {c: [e for e in ex if e[2] != user] for c, ex in self.examples.items()}

    def generic_clusters(self) -> set[int]:
        """Clusters that say how rather than what (see :func:`generic_clusters`)."""
        return generic_clusters(self.terms)

    def topic_keywords(self, n: int) -> dict[int, list[str]]:
        """Top ``n`` c-TF-IDF keywords per coarse topic (ranked against the other topics)."""
        ranked = topic_terms(self.terms, self.topic_of).top_keywords(n, min_users=MIN_KEYWORD_USERS, exclude=GENERIC_TERMS)
        return {t: [w for w, _ in kws] for t, kws in ranked.items()}

    def _regroup(self) -> None:
        if self.clusterer.fitted:
            self.topic_of = group_clusters(self.clusterer.centers, self.topics, self.clusterer.sizes())

    def _keep_examples(self, learned: Sequence[tuple[Sample, int, float]]) -> None:
        """Per cluster the ``EXAMPLES_PER_CLUSTER`` distinct snippets closest to the centre."""
        for s, label, sim in learned:
            snippet = s.text[:SNIPPET_CHARS]
            kept = self.examples.setdefault(label, [])
            if not snippet or any(e[1] == snippet for e in kept):
                continue
            kept.append((round(sim, 4), snippet, s.user or ""))
            kept.sort(key=lambda e: -e[0])
            del kept[EXAMPLES_PER_CLUSTER:]

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
