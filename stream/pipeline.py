"""Stage 1 of the pipeline as plain code: raw records in, per-user updates and dead letters out.

Runs in a worker thread (it is all CPU: decode, clean, jieba, tokenize, encode, cluster).
Learning is idempotent across redelivery: per source partition the clusterer remembers
the last offset it learned from, and a redelivered record is assigned but not learned
again, so a restart never re-applies learning that the checkpoint already holds.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.clustering import OnlineClusterer
from stream.encoder import Encoder
from stream.events import Event, Rejected, decode, format_ts
from stream.profile import Update, make_update
from stream.text import CleanText, clean_many


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as raw as it arrived."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that cannot be processed, with the reason; keyed by its source position."""

    record: Record
    reason: str
    error: str

    @property
    def key(self) -> str:
        return f"{self.record.source}/{self.record.offset}"

    def message(self, failed_at_ms: int) -> dict[str, Any]:
        """The value published on the dead-letter topic (schemas/dead-letter.schema.json)."""
        value = self.record.value
        text: str | None = None
        if value is not None:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        return {
            "topic": self.record.topic,
            "partition": self.record.partition,
            "offset": self.record.offset,
            "key": None if self.record.key is None else base64.b64encode(self.record.key).decode("ascii"),
            "value": None if value is None else base64.b64encode(value).decode("ascii"),
            "value_text": text,
            "reason": self.reason,
            "error": self.error,
            "failed_at": format_ts(failed_at_ms),
        }


@dataclass
class BatchResult:
    updates: list[Update] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    held: int = 0  # records waiting for the clusterer's warm start; their offsets must not be acked yet


@dataclass
class _Pending:
    record: Record
    event: Event
    embedding: np.ndarray


class BatchProcessor:
    """Decode, clean, encode and cluster micro-batches; holds records until the warm start."""

    def __init__(
        self,
        encoder: Encoder,
        clusterer: OnlineClusterer,
        *,
        kind_of_topic: Mapping[str, str],
        prefixes: Mapping[str, str],
        max_text_chars: int,
        learned: Mapping[str, int] | None = None,
    ) -> None:
        self.encoder = encoder
        self.clusterer = clusterer
        self.kind_of_topic = dict(kind_of_topic)
        self.prefixes = dict(prefixes)
        self.max_text_chars = max_text_chars
        self.learned: dict[str, int] = dict(learned or {})
        self.pending: list[_Pending] = []

    @property
    def model_version(self) -> str:
        return f"{self.encoder.version}+{self.clusterer.version}"

    def process(self, records: Sequence[Record], *, force_fit: bool = False) -> BatchResult:
        """One micro-batch; ``force_fit`` warm-starts with what is buffered (at least k)."""
        result = BatchResult()
        valid: list[tuple[Record, Event]] = []
        for record in records:
            kind = self.kind_of_topic.get(record.topic)
            decoded = (
                decode(kind, record.value, max_text_chars=self.max_text_chars)
                if kind
                else Rejected("unknown event type", f"topic {record.topic!r} has no event contract")
            )
            if isinstance(decoded, Rejected):
                result.dead_letters.append(DeadLetter(record, decoded.reason, decoded.error))
            else:
                valid.append((record, decoded))
        fresh: list[_Pending] = []
        if valid:
            cleaned = clean_many([event.text for _, event in valid])
            embeddings = self.encoder.encode(self._encoder_inputs(valid, cleaned))
            fresh = [_Pending(r, e, x) for (r, e), x in zip(valid, embeddings)]
        if not self.clusterer.fitted:
            self.pending.extend(fresh)
            if len(self.pending) >= self.clusterer.warmup or (force_fit and len(self.pending) >= self.clusterer.k):
                self._warm_start()
                fresh, self.pending = self.pending, []
            else:
                result.held = len(self.pending)
                return result
        else:
            self._learn(fresh)
        if fresh:
            labels, _ = self.clusterer.assign(np.stack([p.embedding for p in fresh]))
            version = self.model_version
            result.updates = [
                make_update(
                    kind=p.event.kind,
                    user_id=p.event.user_id,
                    event_id=p.event.event_id,
                    ts_ms=p.event.ts_ms,
                    source=p.record.source,
                    offset=p.record.offset,
                    embedding=p.embedding,
                    cluster=int(label),
                    model_version=version,
                )
                for p, label in zip(fresh, labels)
            ]
        return result

    def _encoder_inputs(self, valid: Sequence[tuple[Record, Event]], cleaned: Sequence[CleanText]) -> list[str]:
        return [self.prefixes.get(event.kind, "") + c.text for (_, event), c in zip(valid, cleaned)]

    def _warm_start(self) -> None:
        self.clusterer.warm_start(np.stack([p.embedding for p in self.pending]))
        self._mark_learned(self.pending)

    def _learn(self, items: Sequence[_Pending]) -> None:
        new = [p for p in items if p.record.offset > self.learned.get(p.record.source, -1)]
        if new:
            self.clusterer.learn(np.stack([p.embedding for p in new]))
            self._mark_learned(new)

    def _mark_learned(self, items: Sequence[_Pending]) -> None:
        for p in items:
            source = p.record.source
            self.learned[source] = max(self.learned.get(source, -1), p.record.offset)
