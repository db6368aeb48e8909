"""Learning of stage 1: assign with the application's current model, send what was learned to its owner.

The interest model is one per application (:mod:`stream.core.shared_model`): this worker
labels texts with the latest :class:`~stream.core.shared_model.ModelView` it has and turns
what it learned into messages for the owner (:mod:`stream.core.model_owner`): per-cluster
sums and counts, tokens and writer tags for the keywords, and a few snippet candidates.
Before the first version exists, texts are held and sent once as warm-up samples; the owner
fits the first centres on what all workers sent.

Per input partition the learner remembers the last offset whose learning was sent (or that a
model version already covers): a redelivered text is assigned again but never sent twice, so
a restart or a rebalance neither loses nor double-counts learning. ``stream eval`` and the
unit tests drive this same class with an in-process owner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.core.clustering import encode_array
from stream.core.keywords import user_tag
from stream.core.shared_model import FORGET, LEARN, WARMUP, ForgetRef, ModelView

EXAMPLES_PER_CLUSTER = 3
SNIPPET_CHARS = 80
WARMUP_SAMPLES_PER_MESSAGE = 64  # a warm-up sample carries its vector: ~2-3 KB each, records stay well below 1 MB


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
    """What one micro-batch produced: the samples to publish with their clusters, how many are held,
    and the messages for the model owner (to be delivered before the batch's records are acked)."""

    assigned: list[Sample] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    held: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    covers: dict[str, int] = field(default_factory=dict)  # per input partition the last offset ``messages`` carry:
    # :meth:`Learner.confirm` it once the owner has them (the broker, or an in-process owner)
    view: ModelView | None = None  # the version that assigned ``assigned`` (its learning may make a newer one)


class Learner:
    """Holds the current model view, the texts waiting for the first one and the positions sent; no I/O."""

    def __init__(self, encoder_version: str) -> None:
        self.encoder_version = encoder_version
        self.view: ModelView | None = None
        self.sent: dict[str, int] = {}
        self.pending: list[Sample] = []

    def state(self) -> dict[str, Any]:
        return {"sent": dict(self.sent)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        for source, offset in dict(state.get("sent", {})).items():
            self.saw_sent(str(source), int(offset))

    def saw_sent(self, source: str, offset: int) -> None:
        """Learning up to ``offset`` of ``source`` reached the owner (from this or another worker)."""
        self.sent[source] = max(self.sent.get(source, -1), offset)

    def use(self, view: ModelView) -> bool:
        """Switch to ``view`` if it is newer and of this encoder; its merged positions count as sent."""
        if view.encoder_version != self.encoder_version or not view.newer_than(self.view):
            return False
        self.view = view
        for source, offset in view.merged.items():
            self.saw_sent(source, offset)
        return True

    @property
    def fitted(self) -> bool:
        return self.view is not None

    def oldest_held(self, fresh: Sequence[Sample]) -> int | None:
        """Event time of the oldest text that would still be held after ``fresh`` (the watermark must wait)."""
        if self.view is not None:
            return None
        times = [s.ts_ms for s in (*self.pending, *fresh)]
        return min(times) if times else None

    def drop_held(self, covered: Callable[[str | None, int], bool]) -> list[dict[str, Any]]:
        """Stop holding texts a forget request covers: they are never published, and their offsets may be acked.

        They were sent to the owner as warm-up samples already, so the returned messages (one per
        user) tell it to drop them, or take their words back out if the first fit used them.
        """
        dropped = [s for s in self.pending if covered(s.user, s.ts_ms)]
        self.pending = [s for s in self.pending if not covered(s.user, s.ts_ms)]
        by_user: dict[str, list[Sample]] = {}
        for s in dropped:
            by_user.setdefault(s.user or "", []).append(s)
        return [{"type": FORGET, "tag": user_tag(user), "terms": {}, "samples": [
            {"source": s.source, "offset": s.offset, "vec": encode_array(np.asarray(s.embedding, dtype=np.float32)),
             "tokens": list(s.tokens)} for s in samples]} for user, samples in by_user.items()]

    def held_positions(self) -> frozenset[tuple[str, int]]:
        """("source", offset) of the texts waiting for the first model version."""
        return frozenset((s.source, s.offset) for s in self.pending)

    def step(self, fresh: Sequence[Sample]) -> Step:
        """Assign ``fresh`` (and anything held) with the current view; learning not sent yet becomes a message."""
        if self.view is None:
            held = {(s.source, s.offset) for s in self.pending}
            self.pending.extend(s for s in fresh if (s.source, s.offset) not in held)
            new = self._unsent(fresh)
            return Step(held=len(self.pending), covers=_last_offsets(new), messages=[
                self._warmup_message(new[i : i + WARMUP_SAMPLES_PER_MESSAGE])
                for i in range(0, len(new), WARMUP_SAMPLES_PER_MESSAGE)])
        samples = [*self.pending, *fresh]
        self.pending = []
        if not samples:
            return Step()
        labels, sims = self.view.assign(np.stack([s.embedding for s in samples]))
        unsent = self._unsent(samples)
        chosen = {id(s) for s in unsent}
        new = [(s, int(c), float(m)) for s, c, m in zip(samples, labels, sims) if id(s) in chosen]
        return Step(assigned=samples, labels=labels, view=self.view, covers=_last_offsets(unsent),
                    messages=[self._learn_message(new)] if new else [])

    def confirm(self, covers: Mapping[str, int]) -> None:
        """A step's messages reached the owner: their texts count as sent. Until then a redelivered text is
        sent again (the owner drops the repeat), so a failed send never loses learning."""
        for source, offset in covers.items():
            self.saw_sent(source, offset)

    def forget_message(
        self, terms: Mapping[str, Mapping[str, float]], user: str, ref: ForgetRef | None = None
    ) -> dict[str, Any]:
        """What the owner needs to take a forgotten user's words, snippets and writer tag out of the model;
        ``ref`` names the request's place in stage 2's input, so that the owner takes them out once."""
        message = {"type": FORGET, "tag": user_tag(user),
                   "terms": {str(c): {str(t): float(n) for t, n in counts.items()} for c, counts in terms.items()}}
        if ref is not None:
            message["ref"] = ref._asdict()
        return message

    def keywords(self, n: int) -> dict[int, list[str]]:
        """Up to ``n`` readable keywords per cluster of the current view (generic review words left out)."""
        return {c: list(kws[:n]) for c, kws in (self.view.keywords.items() if self.view else ())}

    def topic_keywords(self, n: int) -> dict[int, list[str]]:
        return {t: list(kws[:n]) for t, kws in (self.view.topic_keywords.items() if self.view else ())}

    @property
    def topic_of(self) -> Mapping[int, int]:
        return self.view.topic_of if self.view else {}

    def _unsent(self, samples: Sequence[Sample]) -> list[Sample]:
        """The samples whose learning was not sent yet, each position once, in offset order per partition."""
        new: list[Sample] = []
        taken: set[tuple[str, int]] = set()
        for s in sorted(samples, key=lambda s: (s.source, s.offset)):
            if s.offset > self.sent.get(s.source, -1) and (s.source, s.offset) not in taken:
                new.append(s)
                taken.add((s.source, s.offset))
        return new

    def _warmup_message(self, samples: Sequence[Sample]) -> dict[str, Any]:
        parts = []
        for source, group in _by_source(samples):
            parts.append({"source": source, "first": group[0].offset, "last": group[-1].offset, "samples": [
                {"offset": s.offset, "ts": s.ts_ms, "vec": encode_array(np.asarray(s.embedding, dtype=np.float32)),
                 "tokens": list(s.tokens), "tag": _tag(s), "text": s.text[:SNIPPET_CHARS]} for s in group]})
        return {"type": WARMUP, "encoder": self.encoder_version, "parts": parts}

    def _learn_message(self, learned: Sequence[tuple[Sample, int, float]]) -> dict[str, Any]:
        assert self.view is not None
        parts = []
        by_sample = {id(s): (c, m) for s, c, m in learned}
        for source, group in _by_source([s for s, _, _ in learned]):
            labels = np.array([by_sample[id(s)][0] for s in group])
            x = np.stack([np.asarray(s.embedding, dtype=np.float32) for s in group])
            clusters = sorted(set(labels.tolist()))
            sums = np.stack([x[labels == c].sum(axis=0) for c in clusters]).astype(np.float32)
            best: dict[int, list[tuple[float, Sample]]] = {}
            for s in group:
                c, m = by_sample[id(s)]
                best.setdefault(c, []).append((m, s))
            examples = [[c, round(m, 4), s.text[:SNIPPET_CHARS], _tag(s), list(s.tokens)]
                        for c, ranked in best.items()
                        for m, s in sorted(ranked, key=lambda e: -e[0])[:EXAMPLES_PER_CLUSTER] if s.text]
            parts.append({
                "source": source, "first": group[0].offset, "last": group[-1].offset,
                "clusters": clusters, "sums": encode_array(sums), "counts": [int((labels == c).sum()) for c in clusters],
                "texts": [[by_sample[id(s)][0], list(s.tokens), _tag(s)] for s in group],
                "examples": examples,
            })
        return {"type": LEARN, "encoder": self.encoder_version, "model": self.view.version, "parts": parts}


def _last_offsets(samples: Sequence[Sample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        out[s.source] = max(out.get(s.source, -1), s.offset)
    return out


def _tag(sample: Sample) -> str | None:
    return user_tag(sample.user) if sample.user is not None else None


def _by_source(samples: Sequence[Sample]) -> list[tuple[str, list[Sample]]]:
    """Samples grouped per input partition, in offset order (a part covers first..last of one partition)."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.source, []).append(s)
    return [(source, sorted(group, key=lambda s: s.offset)) for source, group in groups.items()]
