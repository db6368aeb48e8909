"""Stage 1 of the pipeline as plain code: raw records in, per-user updates and dead letters out.

Runs in a worker thread (it is all CPU: decode, clean, jieba, tokenize, encode, cluster).
Learning is idempotent across redelivery: per source partition the processor remembers
the last offset it learned from, and a redelivered record is assigned but not learned
again, so a restart never re-applies learning that the checkpoint already holds.

Text events (reviews, searches) wait in a buffer until the clusterer's warm start; other
events pass straight through. The event-time watermark (newest event time seen, minus
the allowed lateness) travels with every update and drives churn checks via ticks.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np

from stream.core.clustering import OnlineClusterer
from stream.core.events import Event, Limits, Reason, Rejected, decode, format_ts
from stream.core.keywords import ClusterTerms
from stream.core.privacy import contains_pii, pseudonym, scrub
from stream.core.profile import ATTRIBUTES, Update, make_update
from stream.core.sentiment import review_sentiment
from stream.core.text import CleanText, clean_many, mask_pii
from stream.worker.encoder import Encoder

KEYWORDS_PER_CLUSTER = 5
SCRUBBED = ("category", "region", "occupation", "item_id", "order_id")  # free-form strings that may reach outputs
MAX_TERMS_PER_CLUSTER = 500


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
        """The value published on the dead-letter topic (schemas/dead-letter.schema.json).

        The original bytes travel unchanged unless they contain personal data: then only
        the masked text does (the source position still leads to the original record).
        """
        value = self.record.value
        text: str | None = None
        pii: tuple[str, ...] = ()
        if value is not None:
            text, pii = mask_pii(value.decode("utf-8", errors="replace"))
        return {
            "topic": self.record.topic,
            "partition": self.record.partition,
            "offset": self.record.offset,
            "key": None if self.record.key is None else base64.b64encode(self.record.key).decode("ascii"),
            "value": None if value is None or pii else base64.b64encode(value).decode("ascii"),
            "value_text": text,
            "pii_masked": list(pii),
            "reason": self.reason,
            "error": mask_pii(self.error)[0],
            "failed_at": format_ts(failed_at_ms),
        }


@dataclass
class BatchResult:
    updates: list[Update] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ticks: list[int] = field(default_factory=list)  # watermarks at which every user is re-assessed (churn)
    held: int = 0  # text records waiting for the clusterer's warm start; their offsets must not be acked yet


@dataclass
class _Text:
    record: Record
    event: Event
    clean: CleanText
    embedding: np.ndarray


class BatchProcessor:
    """Decode, clean, encode and cluster micro-batches; holds text records until the warm start."""

    def __init__(
        self,
        encoder: Encoder,
        clusterer: OnlineClusterer,
        *,
        kind_of_topic: Mapping[str, str],
        prefixes: Mapping[str, str],
        limits: Limits,
        currency: str = "CNY",
        lateness_ms: int = 0,
        tick_every_ms: int = 86_400_000,
        idle_after: float = 30.0,
        pseudonym_key: bytes | None = None,
    ) -> None:
        self.encoder = encoder
        self.clusterer = clusterer
        self.kind_of_topic = dict(kind_of_topic)
        self.prefixes = dict(prefixes)
        self.limits = limits
        self.currency = currency
        self.lateness_ms = lateness_ms
        self.tick_every_ms = tick_every_ms
        self.idle_after = idle_after
        self.pseudonym_key = pseudonym_key
        self.terms = ClusterTerms()
        self.learned: dict[str, int] = {}
        self.partition_max: dict[str, int] = {}
        self.partition_seen: dict[str, float] = {}
        self.partition_next: dict[str, int] = {}
        self.watermark = 0
        self.last_tick: int | None = None
        self.pending: list[_Text] = []

    @property
    def model_version(self) -> str:
        return f"{self.encoder.version}+{self.clusterer.version}"

    def state(self) -> dict[str, Any]:
        """What a checkpoint must hold besides the clusterer, to resume exactly."""
        return {
            "learned": dict(self.learned),
            "terms": self.terms.to_dict(),
            "partition_max": dict(self.partition_max),
            "watermark": self.watermark,
            "last_tick": self.last_tick,
            "encoder_version": self.encoder.version,
        }

    def load_state(self, clusterer: OnlineClusterer, state: Mapping[str, Any]) -> None:
        self.clusterer = clusterer
        self.learned = dict(state["learned"])
        self.terms = ClusterTerms.from_dict(state["terms"])
        self.partition_max = dict(state["partition_max"])
        self.watermark = state["watermark"]
        self.last_tick = state["last_tick"]

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
        texts: list[tuple[Record, Event]] = []
        for source in highwaters:
            self.partition_seen.setdefault(source, now)
        for record in records:
            self.partition_seen[record.source] = now
            self.partition_next[record.source] = max(self.partition_next.get(record.source, 0), record.offset + 1)
            decoded = self._decode(record, wall_ms)
            if isinstance(decoded, Rejected):
                result.dead_letters.append(DeadLetter(record, decoded.reason, decoded.error))
                continue
            self.partition_max[record.source] = max(self.partition_max.get(record.source, 0), decoded.ts_ms)
            if decoded.text is None:
                result.updates.append(self._plain_update(record, decoded))
            else:
                texts.append((record, decoded))
        fresh = self._encode(texts)
        self._advance_watermark(highwaters, now, pending=self.pending + fresh if not self.clusterer.fitted else [])
        new: list[_Text] = []  # texts the model learns from now (never before)
        if not self.clusterer.fitted:
            buffered = {(t.record.source, t.record.offset) for t in self.pending}
            self.pending.extend(t for t in fresh if (t.record.source, t.record.offset) not in buffered)
            if len(self.pending) >= self.clusterer.warmup or (force_fit and len(self.pending) >= self.clusterer.k):
                self.clusterer.warm_start(np.stack([t.embedding for t in self.pending]))
                fresh, new, self.pending = self.pending, self.pending, []
            else:
                result.held = len(self.pending)
                fresh = []
        elif fresh:
            new = [t for t in fresh if t.record.offset > self.learned.get(t.record.source, -1)]
            if new:
                self.clusterer.learn(np.stack([t.embedding for t in new]))
        if fresh:
            labels, _ = self.clusterer.assign(np.stack([t.embedding for t in fresh]))
            learned_now = {id(t) for t in new}
            self._learn_terms([(t, int(l)) for t, l in zip(fresh, labels) if id(t) in learned_now])
            result.updates.extend(self._text_updates(fresh, labels))
        if not result.held:
            result.ticks = self._ticks()
        return result

    def _advance_watermark(self, highwaters: Mapping[str, int | None], now: float, pending: Sequence[_Text]) -> None:
        """Event time every owned, non-idle partition has reached, minus lateness; never past held events.

        Taking the minimum over partitions (not the newest event seen) keeps a lagging topic
        or partition from being judged silent. A partition stops holding the watermark back
        (Flink's idleness) only when it is idle: read to its end offset and without records
        for ``idle_after`` seconds. A partition that is merely waiting behind a busy encoder
        still has records to deliver, so it is never idle.
        """
        sources = set(highwaters) | set(self.partition_max)

        def idle(source: str) -> bool:
            end = highwaters.get(source)
            caught_up = end is not None and self.partition_next.get(source, 0) >= end
            return caught_up and now - self.partition_seen.get(source, now) >= self.idle_after

        active = [self.partition_max.get(s) for s in sources if not idle(s)]
        if None in active or not self.partition_max:
            return
        # Every partition idle: everything there is has been read, so event time is the newest seen.
        candidate = (min(active) if active else max(self.partition_max.values())) - self.lateness_ms
        if pending:
            candidate = min(candidate, min(t.event.ts_ms for t in pending) - 1)
        self.watermark = max(self.watermark, candidate)

    def _decode(self, record: Record, now_ms: int) -> Event | Rejected:
        kind = self.kind_of_topic.get(record.topic)
        if kind is None:
            return Rejected(Reason.UNKNOWN_KIND, f"topic {record.topic!r} has no event contract")
        event = decode(kind, record.value, now_ms=now_ms, limits=self.limits)
        if isinstance(event, Rejected):
            return event
        if kind == "order" and event.fields["currency"] != self.currency:
            return Rejected(Reason.CURRENCY, f"{event.fields['currency']} != {self.currency} (STREAM_CURRENCY)")
        return self._protect(record, event)

    def _protect(self, record: Record, event: Event) -> Event | Rejected:
        """Pseudonymise the user id (or refuse one that is personal data) and scrub free-form fields."""
        if self.pseudonym_key:
            user = pseudonym(event.user_id, self.pseudonym_key)
        elif contains_pii(event.user_id):
            return Rejected(Reason.PII_USER_ID, "set STREAM_PSEUDONYM_KEY to accept such ids as pseudonyms")
        else:
            user = event.user_id
        event_id = event.event_id
        if event_id is None or contains_pii(event_id):
            event_id = f"{record.source}/{record.offset}"
        fields = {**event.fields, **{k: scrub(event.fields.get(k)) for k in SCRUBBED if k in event.fields}}
        return replace(event, user_id=user, event_id=event_id, fields=fields)

    def _encode(self, texts: Sequence[tuple[Record, Event]]) -> list[_Text]:
        if not texts:
            return []
        cleaned = clean_many([event.text or "" for _, event in texts])
        inputs = [self.prefixes.get(event.kind, "") + c.text for (_, event), c in zip(texts, cleaned)]
        embeddings = self.encoder.encode(inputs)
        return [_Text(r, e, c, x) for (r, e), c, x in zip(texts, cleaned, embeddings)]

    def _learn_terms(self, learned: Sequence[tuple[_Text, int]]) -> None:
        """Keyword counts follow the clusters: same decay, only for records learned for the first time."""
        if not learned:
            return
        if self.clusterer.half_life_events > 0:
            self.terms.decay(0.5 ** (len(learned) / self.clusterer.half_life_events))
        for t, label in learned:
            self.terms.add(label, t.clean.tokens)
            self.learned[t.record.source] = max(self.learned.get(t.record.source, -1), t.record.offset)
        self.terms.prune(MAX_TERMS_PER_CLUSTER)

    def _text_updates(self, items: Sequence[_Text], labels: np.ndarray) -> list[Update]:
        keywords = {c: [w for w, _ in kws] for c, kws in self.terms.top_keywords(KEYWORDS_PER_CLUSTER).items()}
        version = self.model_version
        updates = []
        for t, label in zip(items, labels):
            data: dict[str, Any] = {}
            if t.event.kind == "review":
                data = {
                    "category": t.event.fields.get("category"),
                    "rating": t.event.fields.get("rating"),
                    "sentiment": review_sentiment(t.event.fields.get("rating"), t.clean.tokens),
                }
            data["tokens"] = list(t.clean.tokens)
            if t.event.text_cut:
                data["text_cut"] = t.event.text_cut  # characters beyond STREAM_MAX_TEXT_CHARS, neither encoded nor tokenised
            updates.append(
                self._update(
                    t.record, t.event, data,
                    embedding=t.embedding, cluster=int(label), keywords=keywords.get(int(label), []), model_version=version,
                )
            )
        return updates

    def _plain_update(self, record: Record, event: Event) -> Update:
        f = event.fields
        if event.kind == "order":
            data = {"cents": int(Decimal(f["amount"]) * 100), "category": f.get("category"), "items": f["items"]}
        elif event.kind == "forget":
            data = {}
        else:
            data = {name: f[name] for name in ATTRIBUTES if f.get(name) is not None}
        return self._update(record, event, data)

    def _update(self, record: Record, event: Event, data: dict[str, Any], **text: Any) -> Update:
        return make_update(
            kind=event.kind,
            user_id=event.user_id,
            event_id=event.event_id or f"{record.source}/{record.offset}",
            ts_ms=event.ts_ms,
            source=record.source,
            offset=record.offset,
            watermark=self.watermark,
            data=data,
            **text,
        )

    def _ticks(self) -> list[int]:
        """A tick each time the watermark enters a new check interval of event time."""
        if not self.watermark:
            return []
        bucket = self.watermark // self.tick_every_ms
        if self.last_tick is not None and bucket <= self.last_tick // self.tick_every_ms:
            return []
        self.last_tick = self.watermark
        return [self.watermark]
