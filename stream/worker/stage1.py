"""The Faust side of stage 1: micro-batches in, updates/dead letters/ticks out, checkpoint then ack.

:class:`EncodeStage` runs :class:`~stream.worker.pipeline.BatchProcessor` in a worker thread,
publishes its results, holds acks for records waiting for the warm start, and acks only
what the last clustering checkpoint covers (see :mod:`stream.worker.agents` for the order).

Batching is continuous (as in text-embeddings-inference): the agent only queues events, and
one batching task takes everything queued the moment the previous batch is done. A quiet
stream therefore never waits for a window to fill, and batches grow only while the encoder
is busy (up to ``max_batch`` events; the encoder cuts them into token-budget batches).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faust

from stream.config import Settings
from stream.core.clustering import OnlineClusterer, SnapshotMismatch
from stream.core.intake import parse_dead_letter_key
from stream.core.messages import make_tick
from stream.kafka.clients import committed_offsets, read_topic
from stream.worker import checkpoint
from stream.worker.metrics import Metrics
from stream.worker.pipeline import (
    KEYWORDS_PER_CLUSTER,
    BatchProcessor,
    BatchResult,
    Record,
)

log = logging.getLogger(__name__)


def _position(event: faust.EventT) -> tuple[str, int]:
    return f"{event.message.topic}/{event.message.partition}", event.message.offset


def _now_ms() -> int:
    return int(time.time() * 1000)


class EncodeStage:
    """Stage 1: holds the processor, its checkpoint and the records held for warm start."""

    def __init__(
        self,
        processor: BatchProcessor,
        checkpoint_path: Path,
        *,
        updates: faust.TopicT,
        dead_letters: faust.TopicT,
        partitions: int,
        highwaters: Callable[[], dict[str, int | None]],
        warmup_max_wait: float,
        checkpoint_interval: float,
        metrics: Metrics,
        max_batch: int = 256,
    ) -> None:
        self.processor = processor
        self.metrics = metrics
        self.checkpoint_path = checkpoint_path
        self.updates = updates
        self.dead_letters = dead_letters
        self.partitions = partitions
        self.highwaters = highwaters
        self.warmup_max_wait = warmup_max_wait
        self.checkpoint_interval = checkpoint_interval
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self.lock = asyncio.Lock()
        self.held: list[tuple[faust.StreamT, faust.EventT]] = []
        self.held_since: float | None = None
        self.to_ack: list[tuple[faust.StreamT, faust.EventT]] = []
        self.dirty = False
        self.last_checkpoint = time.monotonic()
        self.dead_sent: set[str] = set()
        self.max_batch = max_batch
        self.queued: deque[tuple[faust.StreamT, faust.EventT, float]] = deque()  # with the wall time it arrived
        self.wakeup = asyncio.Event()  # set when something is queued or the timer wants time to pass
        self.space = asyncio.Event()  # set when the queue has room again
        self.failed: BaseException | None = None  # the batching task's error, re-raised in the agent
        self.processed_at: dict[tuple[str, int], float] = {}  # records processed, not yet published -> when

    def restore(self) -> None:
        """Continue the clustering model of the last run, if it fits the current encoder."""
        data = checkpoint.read(self.checkpoint_path)
        if data is None:
            return
        try:
            clusterer, state = OnlineClusterer.restore(data)
        except SnapshotMismatch as exc:
            log.warning("ignoring clustering checkpoint %s: %s", self.checkpoint_path, exc)
            return
        if state.get("encoder_version") != self.processor.encoder.version or clusterer.k != self.processor.clusterer.k:
            log.warning(
                "clustering checkpoint %s is for encoder %s, k=%s; starting a new model",
                self.checkpoint_path, state.get("encoder_version"), clusterer.k,
            )
            return
        self.processor.load_state(clusterer, state)
        log.info("restored clustering model %s from %s", clusterer.version, self.checkpoint_path)

    async def consume(self, stream: faust.StreamT) -> None:
        """The encode agent's body: queue every event (acks stay manual) for the batching task it runs.

        Waits while ``max_batch`` events are queued, so a backlog stays in Faust's buffers and,
        beyond them, on the broker. An error of the batching task is raised here, in the agent.
        """
        acks = stream.noack()
        batching = asyncio.ensure_future(self._batch_forever())
        try:
            async for event in acks.events():
                await self._offer(acks, event)
        finally:
            batching.cancel()

    async def _offer(self, stream: faust.StreamT, event: faust.EventT) -> None:
        while len(self.queued) >= self.max_batch and self.failed is None:
            self.space.clear()
            await self.space.wait()
        if self.failed is not None:
            raise self.failed
        self.queued.append((stream, event, time.time()))
        self.wakeup.set()

    def tick(self) -> None:
        """Called by the 1 s timer: let time pass in the batching task, even when no record comes.

        Idle partitions then release the watermark, and a warm-up that waited ``warmup_max_wait``
        fits with what is buffered. A busy task does both in every batch, so the tick costs nothing there.
        """
        self.wakeup.set()

    async def _batch_forever(self) -> None:
        try:
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                taken = [self.queued.popleft() for _ in range(min(len(self.queued), self.max_batch))]
                self.space.set()
                await self._batch(taken)
                if self.queued:
                    self.wakeup.set()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("stage-1 batching failed; the encode agent stops with it")
            self.failed = exc
            self.space.set()
            raise

    async def _batch(self, taken: list[tuple[faust.StreamT, faust.EventT, float]]) -> None:
        """One micro-batch (empty: only let time pass); the lock keeps ``forget_terms`` out meanwhile."""
        events = [e for _, e, _ in taken]
        records = [
            Record(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
            for e in events
        ]
        now = time.time()
        self.metrics.record_stage("fetch", [arrived - (e.message.timestamp or arrived) for _, e, arrived in taken])
        self.metrics.record_stage("queue_wait", [now - arrived for _, _, arrived in taken])
        force_fit = self.held_since is not None and time.monotonic() - self.held_since >= self.warmup_max_wait
        async with self.lock:
            self.held.extend((stream, e) for stream, e, _ in taken)
            await self._run(records, force_fit=force_fit, highwaters=self.highwaters())

    async def _run(
        self, records: list[Record], *, force_fit: bool, highwaters: dict[str, int | None] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        encoded = getattr(self.processor.encoder, "last_stats", None)
        result: BatchResult = await loop.run_in_executor(
            self.executor, lambda: self.processor.process(records, force_fit=force_fit, highwaters=highwaters)
        )
        self._observe(records, result, highwaters or {}, encoded)
        done = time.monotonic()
        self.metrics.record_stage(
            "outbox_wait", [done - self.processed_at.get((u["source"], u["offset"]), done) for u in result.updates]
        )
        self.processed_at = {p: self.processed_at.get(p, done) for p in result.held_positions}
        sending = time.perf_counter()
        self.dirty |= bool(records or result.updates or result.ticks)
        now_ms = _now_ms()
        dead = [d for d in result.dead_letters if d.key not in self.dead_sent]
        pending = [await self.dead_letters.send(key=d.key.encode(), value=d.message(now_ms), force=True) for d in dead]
        sent = 0  # updates and ticks in event-time order (BatchResult.ticks_before); a tick goes to every partition
        for tick, before in [*zip(result.ticks, result.ticks_before), (None, len(result.updates))]:
            pending += [
                await self.updates.send(key=u["user_id"].encode(), value=u, force=True) for u in result.updates[sent:before]
            ]
            sent = before
            if tick is not None:
                pending += [
                    await self.updates.send(key=b"", value=make_tick(tick), partition=p, force=True)
                    for p in range(self.partitions)
                ]
        await asyncio.gather(*pending)
        self.metrics.record_stage("publish_updates", time.perf_counter() - sending, events=len(result.updates))
        self.metrics.record_published(self.updates.get_topic_name(), len(result.updates) + len(result.ticks) * self.partitions)
        self.metrics.record_published(self.dead_letters.get_topic_name(), len(dead))
        for d in dead:
            self.metrics.record_dead_letter(str(d.reason))
        self.dead_sent.update(d.key for d in dead)
        # Only records not yet published wait (texts before the warm start, updates waiting for a tick).
        waiting = result.held_positions
        self.to_ack.extend(h for h in self.held if _position(h[1]) not in waiting)
        self.held = [h for h in self.held if _position(h[1]) in waiting]
        self.held_since = (self.held_since or time.monotonic()) if self.held else None
        await self._checkpoint_then_ack()

    def _observe(
        self, records: list[Record], result: BatchResult, highwaters: Mapping[str, int | None], encoded: object
    ) -> None:
        """Metrics of one run: input records by outcome, time per stage, encoder load, lag, watermark, model.

        Every record of a micro-batch waits for the whole batch, so each stage's batch time counts
        once per record. ``encoded`` is the encoder's stats object before the run: a new one means
        the run called the encoder.
        """
        m, processor = self.metrics, self.processor
        if records:
            m.record_batch(len(records))
            rejected = Counter(d.record.topic for d in result.dead_letters)
            for topic, n in Counter(r.topic for r in records).items():
                m.record_input(topic, accepted=n - rejected[topic], dead_lettered=rejected[topic])
            for stage, seconds in result.timings.items():
                m.record_stage(stage, seconds, events=len(records))
        stats = getattr(processor.encoder, "last_stats", None)
        if stats is not None and stats is not encoded:
            m.record_encode(stats.texts, stats.tokens, stats.padded_tokens)
        read = processor.clock.partition_next
        m.set_consumer_lag({s: end - read[s] for s, end in highwaters.items() if end is not None and s in read})
        m.set_watermark(processor.watermark)
        m.set_model(processor.encoder.version, processor.clusterer.version, processor.clusterer.updates)

    async def _checkpoint_then_ack(self) -> None:
        """At most once per ``checkpoint_interval``: persist the model, then ack what it has learned from.

        Acking only after the checkpoint means a crash redelivers every record whose learning
        was not saved, so learning is neither lost nor applied twice; batching the fsync keeps
        it off the latency path of small micro-batches.
        """
        if time.monotonic() - self.last_checkpoint < self.checkpoint_interval:
            return
        if self.dirty:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._save_checkpoint)
            self.dirty = False
        for stream, event in self.to_ack:
            await stream.ack(event)
        self.to_ack.clear()
        self.last_checkpoint = time.monotonic()

    async def forget_terms(self, terms: Mapping[str, Mapping[str, int]], user: str) -> None:
        """Take a forgotten user's words (and the user as their writer) out of the cluster keywords; persist that."""
        async with self.lock:
            self.processor.learner.forget(terms, user)
            await asyncio.get_running_loop().run_in_executor(self.executor, self._save_checkpoint)

    def recall_dead_letters(self, settings: Settings) -> None:
        """Dead letters already published for records that can still be redelivered (offset >= committed).

        Dead letters are keyed by their source position; remembering the ones a previous run
        published keeps a crash between publishing and committing from publishing them twice.
        """
        committed = committed_offsets(settings, settings.app_id, settings.kind_of_topic)
        foreign = 0
        for key, _ in read_topic(settings, settings.topic_dead_letters):
            position = parse_dead_letter_key(key)
            if position is None:  # written by someone else: not ours to deduplicate
                foreign += 1
            elif position[1] >= committed.get(position[0], 0):
                self.dead_sent.add(f"{position[0]}/{position[1]}")
        log.info("%d dead letters of uncommitted records were published before; they will not be repeated"
                 " (%d records with foreign keys skipped)", len(self.dead_sent), foreign)

    def _save_checkpoint(self) -> None:
        checkpoint.write_atomic(self.checkpoint_path, self.processor.clusterer.snapshot(**self.processor.state()))

    def clusters(self) -> dict[str, Any]:
        """Cluster sizes and keywords of this worker's model, for GET /clusters."""
        clusterer = self.processor.clusterer
        sizes = clusterer.sizes()
        learner = self.processor.learner
        keywords = learner.keywords(KEYWORDS_PER_CLUSTER * 2)  # only words of enough distinct users
        topic_keywords = learner.topic_keywords(KEYWORDS_PER_CLUSTER * 2)
        topic_of = {c: learner.topic_of.get(c, c) for c in range(clusterer.k)}
        return {
            "model_version": self.processor.model_version,
            "fitted": clusterer.fitted,
            "texts_learned": clusterer.seen,
            "clusters": [
                {"cluster": c, "topic": topic_of[c], "size": round(float(sizes[c]), 2), "keywords": keywords.get(c, []),
                 "examples": [text for _, text, _ in learner.examples.get(c, [])]}
                for c in range(clusterer.k)
            ],
            "topics": [
                {"topic": t, "clusters": [c for c in range(clusterer.k) if topic_of[c] == t],
                 "size": round(sum(float(sizes[c]) for c in range(clusterer.k) if topic_of[c] == t), 2),
                 "keywords": topic_keywords.get(t, [])}
                for t in sorted(set(topic_of.values()))
            ] if clusterer.fitted else [],
        }
