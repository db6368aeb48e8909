"""Stage 1 of the pipeline as plain code: raw records in, per-user updates, dead letters and ticks out.

Runs in a worker thread (it is all CPU: decode, clean, jieba, tokenize, encode, cluster).
:class:`BatchProcessor` only composes the parts, each with one job:
:class:`~stream.core.intake.Intake` (decode + privacy), the encoder (text -> vector),
:class:`~stream.core.learning.Learner` (assignment with the application's current model,
learning messages for its owner, idempotent per offset) and
:class:`~stream.core.watermark.Watermark` (event time and ticks). The watermark travels with
every update and drives churn checks via ticks.

The model is shared by all workers: the shell sends :attr:`BatchResult.messages` to the model
owner and hands each new version to :meth:`BatchProcessor.use_model`. Given a clusterer, the
processor instead runs the same :class:`~stream.core.model_owner.ModelOwner` in process
(``stream eval``, benchmarks, unit tests), so both paths share one learning rule.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from stream.core.clustering import OnlineClusterer
from stream.core.erasure import Erasures
from stream.core.events import Event, Limits, Rejected
from stream.core.intake import DeadLetter, Intake, Record, plain_data
from stream.core.learning import Learner, Sample, Step
from stream.core.messages import Update, make_update
from stream.core.model_owner import ModelOwner, deliver, run_locally
from stream.core.sentiment import review_sentiment
from stream.core.shared_model import ForgetRef, ModelView
from stream.core.text import CleanText, clean_many
from stream.core.watermark import Outbox, Watermark
from stream.worker.encoder import Encoder

KEYWORDS_PER_CLUSTER = 5

__all__ = ["KEYWORDS_PER_CLUSTER", "BatchProcessor", "BatchResult", "DeadLetter", "Record"]


@dataclass
class BatchResult:
    updates: list[Update] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)  # boundaries of event time at which every user is re-assessed (churn)
    ticks_before: list[int] = field(default_factory=list)  # per tick: how many of ``updates`` are sent before it
    held: int = 0  # text records waiting for the clusterer's warm start; their offsets must not be acked yet
    held_positions: AbstractSet[tuple[str, int]] = frozenset()  # records not published yet (those texts, and updates
    # waiting for a tick: stream.core.watermark.Outbox), as they stand until the next batch; every other may be acked
    released: list[tuple[str, int]] = field(default_factory=list)  # records of this batch, or held before it, that
    # are held no more: what may now be acked, found without going over everything held
    timings: dict[str, float] = field(default_factory=dict)  # seconds the batch spent in decode_clean, encode, cluster
    messages: list[dict[str, Any]] = field(default_factory=list)  # learning for the model owner, to be delivered
    # before the batch's records are acked; then ``learner.confirm(covers)``
    covers: dict[str, int] = field(default_factory=dict)


class BatchProcessor:
    """Decode, encode, learn and keep event time for micro-batches of input records."""

    def __init__(
        self,
        encoder: Encoder,
        clusterer: OnlineClusterer | None,
        *,
        kind_of_topic: Mapping[str, str],
        prefixes: Mapping[str, str],
        limits: Limits,
        currency: str = "CNY",
        lateness_ms: int = 0,
        tick_every_ms: int = 86_400_000,
        idle_after: float = 30.0,
        pseudonym_key: bytes | None = None,
        topics: int = 0,
        warmup_max_wait: float = 30.0,
    ) -> None:
        self.encoder = encoder
        self.prefixes = dict(prefixes)
        self.intake = Intake(kind_of_topic, limits=limits, currency=currency, pseudonym_key=pseudonym_key)
        self.learner = Learner(encoder.version)
        self.owner = None if clusterer is None else ModelOwner(
            clusterer, encoder_version=encoder.version, topics=topics, warmup_max_wait=warmup_max_wait)
        self.clock = Watermark(lateness_ms=lateness_ms, idle_after=idle_after, tick_every_ms=tick_every_ms)
        self.erasures = Erasures()
        self.outbox = Outbox(lateness_ms=lateness_ms, tick_every_ms=tick_every_ms, max_wait=idle_after)

    @property
    def clusterer(self) -> OnlineClusterer:
        """The in-process owner's clusterer (only without a shared model)."""
        if self.owner is None:
            raise RuntimeError("the model is shared: its clusterer lives with the owner")
        return self.owner.clusterer

    @property
    def view(self) -> ModelView | None:
        """The model version texts are assigned with (None before the application's first fit)."""
        return self.learner.view

    @property
    def watermark(self) -> int:
        return self.clock.value

    @property
    def lateness_ms(self) -> int:
        return self.clock.lateness_ms

    @property
    def model_version(self) -> str:
        view = self.learner.view
        return f"{self.encoder.version}+{view.version if view else 'unfitted'}"

    def use_model(self, view: ModelView) -> bool:
        """Assign with ``view`` from now on if it is newer (texts held for the first version go out next batch)."""
        return self.learner.use(view)

    def assign_texts(self, texts: Sequence[str], kind: str = "review") -> dict[str, Any]:
        """The clusters this worker would give ``texts`` now (cleaned, masked and encoded as stage 1 does)."""
        view = self.learner.view
        if view is None or not texts:
            return {"model_version": self.model_version, "clusters": [None] * len(texts)}
        _, x, _ = self._clean_and_encode(list(texts), [kind] * len(texts))
        labels, sims = view.assign(np.stack(x))
        return {"model_version": self.model_version, "clusters": [int(c) for c in labels],
                "similarity": [round(float(m), 4) for m in sims]}

    def forget(
        self, terms: Mapping[str, Mapping[str, float]], user: str, ref: ForgetRef | None = None
    ) -> list[dict[str, Any]]:
        """The message that takes a forgotten user's words out of the model (applied here when in process)."""
        message = self.learner.forget_message(terms, user, ref)
        if self.owner is None:
            return [message]
        deliver(self.owner, self.learner, [message])
        return []

    def state(self) -> dict[str, Any]:
        """What a checkpoint must hold to resume exactly (the in-process owner's model included)."""
        state = {**self.learner.state(), **self.clock.state(), **self.erasures.state(),
                 "encoder_version": self.encoder.version}
        if self.owner is not None and self.owner.clusterer.fitted:
            state["owner"] = self.owner.snapshot()
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.learner.load_state(state)
        self.clock.load_state(state)
        self.erasures.load_state(state)
        if self.owner is not None and "owner" in state:
            self.owner = ModelOwner.restore(state["owner"], warmup_max_wait=self.owner.warmup_max_wait)
            self.learner.use(self.owner.view())

    def process(
        self,
        records: Sequence[Record],
        *,
        force_fit: bool = False,
        highwaters: Mapping[str, int | None] | None = None,
        now: float | None = None,
        wall_ms: int | None = None,
    ) -> BatchResult:
        """One micro-batch; ``force_fit`` warm-starts with what is buffered (at least k).

        ``highwaters`` maps the input partitions ("topic/partition") this worker owns to their
        end offsets (None when not known yet) and ``now`` is a monotonic clock reading; both
        only feed the watermark. ``wall_ms`` (epoch milliseconds, default the system clock) bounds
        accepted event time from above.
        """
        now = time.monotonic() if now is None else now
        wall_ms = time.time_ns() // 1_000_000 if wall_ms is None else wall_ms
        highwaters = dict(highwaters or {})
        result = BatchResult()
        texts_before = self.learner.held_positions()  # empty once the model is fitted
        started = time.perf_counter()
        texts: list[tuple[Record, Event]] = []
        self.clock.owned(highwaters, now)
        for record in records:
            self.clock.read(record.source, record.offset, now)
            decoded = self.intake.decode(record, now_ms=wall_ms)
            if isinstance(decoded, Rejected):
                result.dead_letters.append(DeadLetter(record, decoded.reason, decoded.error, self.intake.pseudonym_key))
                continue
            self.clock.event(record.source, decoded.ts_ms)
            if decoded.kind == "forget":
                self.erasures.record(decoded.user_id, decoded.ts_ms)
            if decoded.text is None:
                result.updates.append(self._update(record, decoded, plain_data(decoded)))
            else:
                texts.append((record, decoded))
        # A forget request covers the user's texts up to its event time: in this batch, held, or late.
        dropped = self.learner.drop_held(self.erasures.covers)
        texts = [(r, e) for r, e in texts if not self.erasures.covers(e.user_id, e.ts_ms)]
        fresh = self._encode(texts, result.timings)
        clustering = time.perf_counter()
        if self.owner is not None:
            deliver(self.owner, self.learner, dropped, now=now)
            step = run_locally(self.owner, self.learner, fresh, now=now, force=force_fit)
        else:
            step = self.learner.step(fresh)
            result.messages = [*dropped, *step.messages]
            result.covers = step.covers
        # Held texts hold event time back (the ticks wait for them) during a warm-up, but not once a
        # forced fit has failed (fewer than k texts): then everything else flows and they come late.
        stuck = force_fit and step.held > 0
        self.clock.advance(highwaters, now, held_from_ms=None if stuck else self.learner.oldest_held(()))
        result.held = step.held
        result.updates.extend(self._text_updates(step))
        self.erasures.expire(self.clock.value)
        result.ticks = self.clock.ticks()  # safe while texts are held: the watermark stays before them
        result.updates, result.ticks_before = self.outbox.release(
            result.updates, result.ticks, self.clock.last_tick, now, stuck=self.clock.stuck(now))
        held = result.held_positions = Held(self.learner.held_positions(), self.outbox.positions())
        # Nothing else can stop being held: a waiting update leaves the outbox as one of ``result.updates``.
        maybe = chain(((r.source, r.offset) for r in records), texts_before,
                      ((u["source"], u["offset"]) for u in result.updates))
        result.released = [p for p in dict.fromkeys(maybe) if p not in held]
        result.timings["cluster"] = time.perf_counter() - clustering
        result.timings["decode_clean"] = clustering - started - result.timings.get("encode", 0.0)
        return result

    def _encode(self, texts: Sequence[tuple[Record, Event]], timings: dict[str, float]) -> list[Sample]:
        if not texts:
            return []
        cleaned, embeddings, timings["encode"] = self._clean_and_encode(
            [e.text or "" for _, e in texts], [e.kind for _, e in texts])
        return [
            Sample(r.source, r.offset, e.ts_ms, x, c.tokens, payload=(r, e, c), text=c.text, user=e.user_id)
            for (r, e), c, x in zip(texts, cleaned, embeddings)
        ]

    def _clean_and_encode(self, texts: list[str], kinds: list[str]) -> tuple[list[CleanText], np.ndarray, float]:
        """The one way a text becomes a vector, so probes (GET /model/assign) see what stage 1 sees.

        Also returns the seconds spent in the encoder alone (cleaning counts as decode_clean)."""
        cleaned = clean_many(texts)
        inputs = [self.prefixes.get(k, "") + c.text for k, c in zip(kinds, cleaned)]
        began = time.perf_counter()
        embeddings = self.encoder.encode(inputs)
        return cleaned, embeddings, time.perf_counter() - began

    def _text_updates(self, step: Step) -> list[Update]:
        view = step.view
        if view is None or not step.assigned:
            return []
        version = f"{self.encoder.version}+{view.version}"
        topics = [view.topic_of.get(c, c) for c in range(view.k)]
        updates = []
        for s, label in zip(step.assigned, step.labels):
            record, event, clean = s.payload
            cluster = int(label)
            updates.append(
                self._update(
                    record, event, _text_data(event, clean),
                    embedding=s.embedding, cluster=cluster, keywords=view.keywords.get(cluster, [])[:KEYWORDS_PER_CLUSTER],
                    model_version=version, topic_of=topics,
                    topic_keywords=view.topic_keywords.get(topics[cluster], [])[:KEYWORDS_PER_CLUSTER],
                    generic=cluster in view.generic,
                )
            )
        return updates

    def _update(self, record: Record, event: Event, data: dict[str, Any], **text: Any) -> Update:
        return make_update(
            kind=event.kind,
            user_id=event.user_id,
            event_id=event.event_id or f"{record.source}/{record.offset}",
            ts_ms=event.ts_ms,
            source=record.source,
            offset=record.offset,
            watermark=self.clock.value,
            data=data,
            **text,
        )


class Held(AbstractSet[tuple[str, int]]):
    """The positions held back: texts waiting for the warm start and updates waiting in the outbox (a live view of it).

    A view, so that a batch does not copy everything waiting (a backlog keeps up to
    ``MAX_WAITING`` updates) only to ask about a few of them.
    """

    def __init__(self, texts: AbstractSet[tuple[str, int]], outbox: AbstractSet[tuple[str, int]]) -> None:
        self.texts = texts
        self.outbox = outbox

    def __contains__(self, position: object) -> bool:
        return position in self.texts or position in self.outbox

    def __iter__(self) -> Iterator[tuple[str, int]]:
        yield from self.texts
        yield from (p for p in self.outbox if p not in self.texts)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @classmethod
    def _from_iterable(cls, positions: Iterable[tuple[str, int]]) -> frozenset[tuple[str, int]]:
        return frozenset(positions)  # what set operations on the view return


def _text_data(event: Event, clean: CleanText) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if event.kind == "review":
        data = {
            "category": event.fields.get("category"),
            "rating": event.fields.get("rating"),
            "sentiment": review_sentiment(event.fields.get("rating"), clean.tokens),
        }
    data["tokens"] = list(clean.tokens)
    if event.text_cut:
        data["text_cut"] = event.text_cut  # characters beyond STREAM_MAX_TEXT_CHARS, neither encoded nor tokenised
    return data
