"""The Faust side of the model owner: the one worker holding the learning topic's partition merges it.

Kafka's group protocol gives the single partition of ``{app}-model-learning`` to exactly one
worker of the application and moves it when that worker dies; whoever holds it runs
:class:`~stream.core.model_owner.ModelOwner`. Order per batch of learning records:

  1. (first batch after an assignment) load the newest state from the state topic and merge the
     learning records after it, so a new owner continues where the last one published;
  2. merge the records in offset order (a record at or before the owner's position is skipped,
     so the records re-read after a takeover count once);
  3. if the model changed: publish the new version on the model topic (and, every
     ``model_state_interval``, the whole state on the state topic) and wait for the broker;
  4. ack the records (once fitted: every record is in a published version or was a duplicate).

Before the first fit nothing is acked: the warm-up buffer lives only in memory, and a
successor rebuilds it by re-reading the learning topic from the start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
import orjson

from stream.config import Settings
from stream.core.clustering import OnlineClusterer
from stream.core.model_owner import ModelOwner
from stream.core.shared_model import encode_snapshot
from stream.kafka.clients import make_producer
from stream.kafka.model_topics import latest_snapshot, latest_state, learning_since
from stream.kafka.topics import MAX_MODEL_BYTES

log = logging.getLogger(__name__)

MODEL_KEY = b"model"
STATE_KEY = b"state"


class OwnerStage:
    """Runs the model owner while this worker holds the learning topic's partition."""

    def __init__(self, settings: Settings, encoder_version: str) -> None:
        self.settings = settings
        self.encoder_version = encoder_version
        self.owner: ModelOwner | None = None
        self.reload = True  # set on every assignment: another worker may have published since
        self.lock = asyncio.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-owner")
        self.unacked: list[tuple[faust.StreamT, faust.EventT]] = []
        self._producer: Any = None
        self.published_at: float | None = None
        self.state_published_at: float | None = None

    async def handle(self, stream: faust.StreamT, events: list[faust.EventT]) -> None:
        records = [(e.message.offset, e.message.value) for e in events]
        async with self.lock:
            self.unacked.extend((stream, e) for e in events)
            await asyncio.get_running_loop().run_in_executor(self.executor, self._merge, records)
            await self._publish_then_ack()

    async def on_timer(self) -> None:
        """A warm-up that waited ``warmup_max_wait`` fits with what is buffered, even without new records."""
        if self.owner is None or self.owner.clusterer.fitted or not self.owner.held:
            return
        async with self.lock:
            if self.owner.fit_if_due(time.monotonic()):
                await self._publish_then_ack()

    def state(self) -> dict[str, Any]:
        """For /health: what this worker merged as owner (empty when it is not the owner)."""
        if self.owner is None:
            return {}
        return {"version": self.owner.number, "position": self.owner.position, "held_for_warmup": len(self.owner.held),
                "messages": dict(self.owner.counts)}

    def _merge(self, records: list[tuple[int, bytes | None]]) -> None:
        if self.reload or self.owner is None:
            self.owner = self._load()
            self.reload = False
        now = time.monotonic()
        for offset, value in records:
            try:
                message = orjson.loads(value or b"null")
            except orjson.JSONDecodeError:
                message = None
            self.owner.receive(message if isinstance(message, dict) else {}, position=offset, now=now)
        self.owner.fit_if_due(now)

    def _load(self) -> ModelOwner:
        s = self.settings
        state = latest_state(s)
        if state is not None and state.get("encoder_version") == self.encoder_version:
            owner = ModelOwner.restore(state, warmup_max_wait=s.warmup_max_wait)
            since = learning_since(s, owner.position)
            for offset, message in since:  # acked after versions that this state does not include
                owner.receive(message, position=offset, now=time.monotonic())
            published = latest_snapshot(s, s.topic_model)
            owner.number = max(owner.number, int((published or {}).get("number", 0)))  # workers take only newer ones
            log.info("model owner: continuing from the state of version %d and %d learning records since, at "
                     "position %d", int(state["number"]), len(since), owner.position)
            return owner
        if state is not None:
            log.error("model topic %s holds a model of encoder %s, this worker runs %s: starting a new lineage "
                      "(workers of the old encoder cannot contribute to it)", s.topic_model_state,
                      state.get("encoder_version"), self.encoder_version)
        log.info("model owner: no model yet; collecting warm-up samples from the learning topic")
        clusterer = OnlineClusterer(k=s.clusters, warmup=s.warmup_size, seed=s.seed,
                                    half_life_events=s.half_life_events, reassignment_ratio=s.reassignment_ratio)
        return ModelOwner(clusterer, encoder_version=self.encoder_version, topics=s.topics,
                          warmup_max_wait=s.warmup_max_wait)

    async def _publish_then_ack(self) -> None:
        assert self.owner is not None
        if self.owner.changed:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._publish)
        if self.owner.clusterer.fitted:
            for stream, event in self.unacked:
                await stream.ack(event)
            self.unacked.clear()

    def _publish(self) -> None:
        """The new version on the model topic and, every ``model_state_interval``, the whole state on the
        state topic; both acknowledged by the broker before the learning records are acked."""
        assert self.owner is not None
        s, now = self.settings, time.monotonic()
        view = self.owner.publish()
        records = [(s.topic_model, MODEL_KEY, encode_snapshot(view.to_snapshot(self.owner.position)))]
        with_state = self.state_published_at is None or now - self.state_published_at >= s.model_state_interval
        if with_state:
            records.append((s.topic_model_state, STATE_KEY, encode_snapshot(self.owner.snapshot(view))))
        if self._producer is None:
            self._producer = make_producer(s, **{"message.max.bytes": MAX_MODEL_BYTES + 1024 * 1024,
                                                 "compression.type": "none"})
        errors: list[Any] = []
        for topic, key, data in records:
            self._producer.produce(topic, key=key, value=data,
                                   on_delivery=lambda err, _msg: errors.append(err) if err else None)
        if self._producer.flush(30) or errors:
            self.owner.number -= 1  # not published: the next attempt reuses the number
            self.owner.changed = True
            raise RuntimeError(f"model version {view.number} not published: {errors or 'flush timed out'}")
        self.published_at = now
        if with_state:
            self.state_published_at = now
        log.info("model version %s published (%d bytes%s, %d texts learned)", view.version, len(records[0][2]),
                 f"; state {len(records[1][2])} bytes" if with_state else "", view.seen)
