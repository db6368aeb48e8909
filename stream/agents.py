"""The Faust shell: two agents, one table, web views. Logic lives in pure modules.

Commit order (at-least-once, made exact by idempotence):

Stage 1 ``encode`` (micro-batches of ``reviews`` + ``searches``, manual acks):
  1. decode/validate, clean, encode, assign and learn in a worker thread;
  2. write the clustering checkpoint atomically (it records, per source partition, the
     last offset learned from, so redelivered records are never learned twice);
  3. publish dead letters and per-user updates and wait until the broker has them;
  4. ack the batch; Faust commits acked offsets after flushing its producer.
  A crash anywhere before 4 redelivers the batch; step 1 then skips learning and the
  updates it re-sends are skipped by stage 2.

Stage 2 ``apply`` (``profile-updates``, keyed by user id, co-partitioned with the table):
  apply the update to the user's profile unless its (source partition, offset) was
  applied already, store it (table changelog), publish the public profile. Faust flushes
  the producer (changelog + profile) before committing the offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from stream import checkpoint
from stream.clustering import OnlineClusterer, SnapshotMismatch
from stream.config import Settings
from stream.pipeline import BatchProcessor, BatchResult, Record
from stream.profile import apply_update, new_profile, public_view

log = logging.getLogger(__name__)


class EncodeStage:
    """Stage 1: holds the processor, its checkpoint and the records held for warm start."""

    def __init__(
        self,
        processor: BatchProcessor,
        checkpoint_path: Path,
        updates: faust.TopicT,
        dead_letters: faust.TopicT,
        warmup_max_wait: float,
    ) -> None:
        self.processor = processor
        self.checkpoint_path = checkpoint_path
        self.updates = updates
        self.dead_letters = dead_letters
        self.warmup_max_wait = warmup_max_wait
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self.lock = asyncio.Lock()
        self.held: list[tuple[Any, faust.EventT]] = []
        self.held_since: float | None = None

    def restore(self) -> None:
        """Continue the clustering model of the last run, if it fits the current encoder."""
        data = checkpoint.read(self.checkpoint_path)
        if data is None:
            return
        try:
            clusterer, extra = OnlineClusterer.restore(data)
        except SnapshotMismatch as exc:
            log.warning("ignoring clustering checkpoint %s: %s", self.checkpoint_path, exc)
            return
        if extra.get("encoder_version") != self.processor.encoder.version or clusterer.k != self.processor.clusterer.k:
            log.warning(
                "clustering checkpoint %s is for encoder %s, k=%s; starting a new model",
                self.checkpoint_path, extra.get("encoder_version"), clusterer.k,
            )
            return
        self.processor.clusterer = clusterer
        self.processor.learned = dict(extra["learned"])
        log.info("restored clustering model %s from %s", clusterer.version, self.checkpoint_path)

    async def handle(self, stream: faust.StreamT, events: list[faust.EventT]) -> None:
        records = [
            Record(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
            for e in events
        ]
        async with self.lock:
            self.held.extend((stream, e) for e in events)
            await self._run(records, force_fit=False)

    async def flush_warmup(self) -> None:
        """Warm-start with what is buffered once the oldest held record waited long enough."""
        if self.held_since is None or time.monotonic() - self.held_since < self.warmup_max_wait:
            return
        async with self.lock:
            await self._run([], force_fit=True)

    async def _run(self, records: list[Record], *, force_fit: bool) -> None:
        loop = asyncio.get_running_loop()
        result: BatchResult = await loop.run_in_executor(
            self.executor, lambda: self.processor.process(records, force_fit=force_fit)
        )
        if self.processor.clusterer.fitted:
            await loop.run_in_executor(self.executor, self._save_checkpoint)
        now_ms = int(time.time() * 1000)
        pending = [
            await self.dead_letters.send(key=d.key.encode(), value=d.message(now_ms), force=True)
            for d in result.dead_letters
        ]
        pending += [
            await self.updates.send(key=u["user_id"].encode(), value=u, force=True) for u in result.updates
        ]
        await asyncio.gather(*pending)
        if result.held:
            self.held_since = self.held_since or time.monotonic()
            return
        for stream, event in self.held:
            await stream.ack(event)
        self.held.clear()
        self.held_since = None

    def _save_checkpoint(self) -> None:
        data = self.processor.clusterer.snapshot(
            learned=self.processor.learned, encoder_version=self.processor.encoder.version
        )
        checkpoint.write_atomic(self.checkpoint_path, data)


def register(app: faust.App, settings: Settings, processor: BatchProcessor) -> EncodeStage:
    """Declare topics, the profile table, the agents and the web views on ``app``."""
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    sources = app.topic(*settings.source_topics, **raw)
    updates = app.topic(settings.topic_updates, key_serializer="raw", value_serializer="json")
    profiles_out = app.topic(settings.topic_profiles, key_serializer="raw", value_serializer="json")
    dead_letters = app.topic(settings.topic_dead_letters, key_serializer="raw", value_serializer="json")
    table = app.Table(
        "profile-state",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
    )
    stage = EncodeStage(
        processor,
        settings.data_dir / "clustering" / f"{settings.app_id}.ckpt",
        updates,
        dead_letters,
        settings.warmup_max_wait,
    )
    stage.restore()
    half_life_ms = settings.interest_half_life_days * 86_400_000

    @app.agent(sources, name="encode")
    async def encode(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_wait):
            await stage.handle(stream, events)

    @app.timer(interval=1.0)
    async def warmup_deadline() -> None:
        await stage.flush_warmup()

    @app.agent(updates, name="apply")
    async def apply(stream: faust.StreamT) -> None:
        async for key, update in stream.items():
            user = key.decode()
            profile = table.get(user) or new_profile(user)
            updated = apply_update(profile, update, half_life_ms=half_life_ms)
            if updated is profile:
                continue
            table[user] = updated
            view = public_view(updated, updated_at_ms=int(time.time() * 1000))
            await profiles_out.send(key=key, value=view, force=True)

    @app.page("/profiles/{user_id}")
    @app.table_route(table=table, match_info="user_id")
    async def profile_view(web: View, request: Request, user_id: str) -> Response:
        profile = table.get(user_id)
        if profile is None:
            return web.json({"error": "not_found", "user_id": user_id, "detail": "no events seen for this user"}, status=404)
        return web.json(public_view(profile, updated_at_ms=int(time.time() * 1000)))

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        clusterer = stage.processor.clusterer
        return web.json(
            {"status": "ok", "model_version": stage.processor.model_version, "clusters_fitted": clusterer.fitted,
             "held_for_warmup": len(stage.held)}
        )

    return stage
