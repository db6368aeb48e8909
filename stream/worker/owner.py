"""The Faust side of the model owner: the one worker holding the learning topic's partition merges it.

Kafka's group protocol gives the single partition of ``{app}-model-learning`` to exactly one
worker of the application and moves it when that worker dies; whoever holds it runs
:class:`~stream.core.model_owner.ModelOwner`. Order per batch of learning records:

  1. (first batch after an assignment) load the newest state from the state topic, continue the
     numbering of the newest version, and merge the learning records after the state that the
     last owner acked, so a new owner continues where the last one published;
  2. merge the records in offset order (a record at or before the owner's position is skipped,
     so the records re-read after a takeover count once);
  3. if the model changed: write the whole state on the state topic when due (see
     :meth:`OwnerStage._state_due`), then publish the new version on the model topic, each
     acknowledged by the broker;
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
from stream.core.shared_model import ModelFormatError, ModelView, encode_snapshot
from stream.kafka.clients import committed_offsets, make_producer
from stream.kafka.model_topics import first_offset, latest_snapshot, latest_state, learning_since
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
        self.state_written: tuple[float, int, int] | None = None  # when, at which position and after how many
        # forgets the last whole state was written by this owner; None: due with the next version

    async def handle(self, stream: faust.StreamT, events: list[faust.EventT]) -> None:
        records = [(e.message.offset, e.message.value) for e in events]
        async with self.lock:
            self.unacked.extend((stream, e) for e in events)
            await asyncio.get_running_loop().run_in_executor(self.executor, self._merge, records)
            await self._publish_then_ack()

    async def on_timer(self) -> None:
        """A warm-up that waited ``warmup_max_wait`` fits with what is buffered, and a whole state behind
        the newest version is written once it is due, even without new records (the learning records
        after it are deleted after a week)."""
        if self.owner is None or not (self.owner.held or self.owner.clusterer.fitted):
            return
        async with self.lock:
            if self.reload:  # the learning partition moved: this owner may no longer be the one (its state is older)
                return
            if self.owner.fit_if_due(time.monotonic()):
                await self._publish_then_ack()
            elif self.owner.clusterer.fitted and not self.owner.changed and self._state_due(time.monotonic()):
                try:
                    await asyncio.get_running_loop().run_in_executor(self.executor, self._write_state, None)
                except Exception:  # noqa: BLE001 - the broker may be away for a moment: the next tick tries again
                    log.warning("model state not written; trying again in a second", exc_info=True)

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
        self.state_written = None
        state = latest_state(s)
        if state is not None and state.get("encoder_version") == self.encoder_version:
            owner = ModelOwner.restore(state, warmup_max_wait=s.warmup_max_wait)
            published = latest_snapshot(s, s.topic_model)
            if published is not None and published.get("encoder_version") == self.encoder_version:
                try:
                    owner.continue_after(ModelView.from_snapshot(published))  # workers take only newer numbers
                except ModelFormatError as exc:
                    log.error("the newest record of %s is not a model version (%s): numbering from the state",
                              s.topic_model, exc)
            replayed = self._replay_acked(owner)
            log.info("model owner: continuing from the state of version %d and %d learning records acked since; "
                     "at position %d, next version %d", int(state["number"]), replayed, owner.position, owner.number + 1)
            return owner
        if state is not None:
            log.error("model state topic %s holds a model of encoder %s, this worker runs %s: starting a new lineage "
                      "(workers of the old encoder cannot contribute to it)", s.topic_model_state,
                      state.get("encoder_version"), self.encoder_version)
        log.info("model owner: no model yet; collecting warm-up samples from the learning topic")
        clusterer = OnlineClusterer(k=s.clusters, warmup=s.warmup_size, seed=s.seed,
                                    half_life_events=s.half_life_events, reassignment_ratio=s.reassignment_ratio)
        return ModelOwner(clusterer, encoder_version=self.encoder_version, topics=s.topics,
                          warmup_max_wait=s.warmup_max_wait)

    def _replay_acked(self, owner: ModelOwner) -> int:
        """Merge the learning records after the state that the last owner acked (it acks after each version,
        the state comes less often); Faust delivers those after the committed offset. Returns how many."""
        s = self.settings
        start = owner.position + 1
        kept_from = first_offset(s, s.topic_learning)
        if kept_from > start:
            log.error("learning records %d to %d of %s are gone (retention) and no model state covered them: the "
                      "model lacks that learning", start, kept_from - 1, s.topic_learning)
        committed = committed_offsets(s, s.app_id, [s.topic_learning]).get(f"{s.topic_learning}/0")
        replayed = 0
        if committed is not None and committed > start:
            for offset, message in learning_since(s, owner.position, stop=committed):
                owner.receive(message, position=offset, now=time.monotonic())
                replayed += 1
        return replayed

    async def _publish_then_ack(self) -> None:
        assert self.owner is not None
        if self.owner.changed:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._publish)
        if self.owner.clusterer.fitted:
            for stream, event in self.unacked:
                await stream.ack(event)
            self.unacked.clear()

    def _state_due(self, now: float) -> bool:
        """The whole state is written with the first version after a load or a forget (a forgotten writer's
        words must not wait in the state), and when it is ``model_state_interval`` behind."""
        assert self.owner is not None
        if self.state_written is None:
            return True
        when, position, forgets = self.state_written
        if self.owner.counts["forget"] != forgets:
            return True
        return self.owner.position > position and now - when >= self.settings.model_state_interval

    def _publish(self) -> None:
        """The whole state first when due (so the first version of a lineage never exists without one), then
        the new version; each acknowledged by the broker before the next step."""
        assert self.owner is not None
        view = self.owner.publish()
        try:
            if self._state_due(time.monotonic()):
                self._write_state(view)
            data = encode_snapshot(view.to_snapshot(self.owner.position))
            self._send(self.settings.topic_model, MODEL_KEY, data, f"model version {view.number}")
        except Exception:
            self.owner.number -= 1  # not published: the next attempt reuses the number
            self.owner.changed = True
            raise
        log.info("model version %s published (%d bytes, %d texts learned)", view.version, len(data), view.seen)

    def _write_state(self, view: ModelView | None) -> None:
        assert self.owner is not None
        data = encode_snapshot(self.owner.snapshot(view))
        self._send(self.settings.topic_model_state, STATE_KEY, data, f"model state of version {self.owner.number}")
        self.state_written = (time.monotonic(), self.owner.position, self.owner.counts["forget"])
        log.info("model state of version %d written (%d bytes, position %d)", self.owner.number, len(data),
                 self.owner.position)

    def _send(self, topic: str, key: bytes, data: bytes, what: str) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings, **{"message.max.bytes": MAX_MODEL_BYTES + 1024 * 1024,
                                                              "compression.type": "none"})
        errors: list[Any] = []
        self._producer.produce(topic, key=key, value=data,
                               on_delivery=lambda err, _msg: errors.append(err) if err else None)
        if self._producer.flush(30) or errors:
            raise RuntimeError(f"{what} not published: {errors or 'flush timed out'}")
