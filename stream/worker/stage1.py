"""The Faust side of stage 1: micro-batches in, updates/dead letters/ticks out, checkpoint then ack.

:class:`EncodeStage` runs :class:`~stream.worker.pipeline.BatchProcessor` in a worker thread,
publishes its results, holds acks for records waiting for the warm start, and acks only
what the last clustering checkpoint covers (see :mod:`stream.worker.agents` for the order).

Batching is continuous (as in text-embeddings-inference): the agent only queues events, and
one batching task takes everything queued the moment the previous batch is done. A quiet
stream therefore never waits for a window to fill, and batches grow only while the encoder
is busy (up to ``max_batch`` events, ``backlog_batch`` under a backlog; the encoder cuts them into
token-budget batches).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2

from stream.config import Settings
from stream.core.acks import InOrderAcks
from stream.core.intake import parse_dead_letter_key
from stream.core.messages import Tick, Update, make_tick, pack_internal
from stream.core.shared_model import ForgetRef
from stream.kafka.clients import committed_offsets, data_ends, read_topic
from stream.kafka.model_topics import ModelFollower, sent_since
from stream.worker import checkpoint
from stream.worker.metrics import Metrics
from stream.worker.pipeline import BatchProcessor, BatchResult, Record

log = logging.getLogger(__name__)


def _position(event: faust.EventT) -> tuple[str, int]:
    return f"{event.message.topic}/{event.message.partition}", event.message.offset


def _now_ms() -> int:
    return int(time.time() * 1000)


def _failure(future: Any) -> BaseException | None:
    return asyncio.CancelledError() if future.cancelled() else future.exception()


def user_partition(user_id: str, partitions: int) -> int:
    """A user's partition of the internal topic: the Kafka client's default partitioner (murmur2 of the
    key), which Faust's ``table_route`` also uses, so a lookup goes to the worker holding the profile."""
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


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
        learning: faust.TopicT,
        follower: ModelFollower,
        settings: Settings,
        max_batch: int = 256,
        backlog_batch: int | None = None,
        crash: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> None:
        self.processor = processor
        self.learning = learning
        self.follower = follower
        self.settings = settings
        self.sender = f"{settings.app_id}/{uuid.uuid4().hex[:12]}".encode()  # the learning topic's key: which worker
        self.reassigned = False  # set on a rebalance: sent positions of newly owned partitions must be read again
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
        self.held: InOrderAcks[tuple[faust.StreamT, faust.EventT]] = InOrderAcks()  # deliveries not acked yet
        self.held_since: float | None = None
        self.to_ack: list[tuple[faust.StreamT, faust.EventT]] = []
        self.dirty = False
        self.last_checkpoint = time.monotonic()
        self.dead_sent: set[str] = set()
        self.small_batch = max_batch
        self.backlog_batch = backlog_batch or max_batch
        self.max_batch = max_batch  # the current cap: backlog_batch while that many events wait (_cap)
        self.queued: deque[tuple[faust.StreamT, faust.EventT, float]] = deque()  # with the wall time it arrived
        self.wakeup = asyncio.Event()  # set when something is queued or the timer wants time to pass
        self.space = asyncio.Event()  # set when the queue has room again
        self.failed: BaseException | None = None  # the batching task's error, re-raised in the agent
        self.processed_at: dict[tuple[str, int], float] = {}  # records processed, not yet published -> when
        # Updates, ticks and dead letters of the last batch not yet known delivered: the next batch is
        # processed meanwhile and sends only once they are (_delivered), as does the checkpoint before an ack.
        self.in_flight: list[Any] = []
        self.crash = crash  # stops the whole worker (Faust's App.crash): outputs the broker refused
        self.undelivered: BaseException | None = None  # set for good once an output was not delivered
        self.offsets_checked = float("-inf")  # when committed offsets were last asked for silent partitions
        self.offsets_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="committed-offsets")
        self.offsets_query: tuple[Future[dict[str, int]], list[str]] | None = None  # asked, not yet used
        self.stall_asked: dict[str, int] = {}  # silent partition -> the end offset it was asked about at

    def restore(self) -> None:
        """Continue this worker's event time, erasures and sent positions, and wait for the model topic.

        The clustering model itself is the application's (:mod:`stream.kafka.model_topics`): the
        follower reads its newest version, and what other workers sent after it counts as sent.
        """
        if not self.follower.caught_up.wait(timeout=60):
            log.warning("model topic %s not read to its end within 60 s; continuing", self.settings.topic_model)
        data = checkpoint.read(self.checkpoint_path)
        if data is not None:
            try:
                state = orjson.loads(data)
            except orjson.JSONDecodeError:
                log.warning("ignoring checkpoint %s: not this version's JSON state", self.checkpoint_path)
            else:
                self.processor.load_state(state)
                log.info("restored event time and erasures from %s", self.checkpoint_path)
        self.rescan()

    def rescan(self) -> None:
        """Count as sent what any worker sent after the newest model version (run when partitions move)."""
        self._take_model()
        for source, offset in sent_since(self.settings, self.follower.position).items():
            self.processor.learner.saw_sent(source, offset)
        self.stall_asked.clear()  # a partition back from another worker is asked about afresh
        self.reassigned = False

    def _take_model(self) -> None:
        view = self.follower.latest
        if view is not None and self.processor.use_model(view):
            self.metrics.set_model(self.processor.encoder.version, view.version, view.number)

    async def consume(self, stream: faust.StreamT) -> None:
        """The encode agent's body: queue every event (acks stay manual) for the batching task it runs.

        Waits while ``max_batch`` events are queued, so a backlog stays in Faust's buffers and,
        beyond them, on the broker. An error of the batching task is raised here, in the agent.
        """
        if self.undelivered is not None:  # an agent restarted by Faust's supervisor must not ack anything
            raise self.undelivered
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
                highwaters = self.highwaters()
                self.max_batch = self._cap(highwaters)
                taken = [self.queued.popleft() for _ in range(min(len(self.queued), self.max_batch))]
                self.space.set()
                await self._batch(taken, highwaters)
                if self.queued:
                    self.wakeup.set()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("stage-1 batching failed; the encode agent stops with it")
            self.failed = exc
            self.space.set()
            raise

    def _cap(self, highwaters: Mapping[str, int | None]) -> int:
        """The next batch's size limit: small while the stream keeps up (every event waits for its whole
        batch), ``backlog_batch`` once that many records wait to be read (then throughput is what counts)."""
        if self.backlog_batch <= self.small_batch:
            return self.small_batch
        read = self.processor.clock.partition_next
        lag = sum(end - read[s] for s, end in highwaters.items() if end is not None and s in read)
        return self.backlog_batch if lag >= self.backlog_batch else self.small_batch

    async def _batch(
        self, taken: list[tuple[faust.StreamT, faust.EventT, float]], highwaters: dict[str, int | None]
    ) -> None:
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
            for stream, e, _ in taken:
                self.held.hold(_position(e), (stream, e))
            await self._run(records, force_fit=force_fit, highwaters=highwaters)

    async def _run(
        self, records: list[Record], *, force_fit: bool, highwaters: dict[str, int | None] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        encoded = getattr(self.processor.encoder, "last_stats", None)
        result: BatchResult = await loop.run_in_executor(self.executor, lambda: self._process(records, force_fit, highwaters))
        self._observe(records, result, highwaters or {}, encoded)
        done = time.monotonic()
        self.metrics.record_stage(
            "outbox_wait", [done - self.processed_at.get((u["source"], u["offset"]), done) for u in result.updates]
        )
        for p in result.released:
            self.processed_at.pop(p, None)
        for r in records:
            if (r.source, r.offset) in result.held_positions:
                self.processed_at.setdefault((r.source, r.offset), done)
        await self._delivered()  # the previous batch's outputs: delivered while this batch was processed
        sending = time.perf_counter()
        self.dirty |= bool(records or result.updates or result.ticks)
        now_ms = _now_ms()
        dead = [d for d in result.dead_letters if d.key not in self.dead_sent]
        pending = [await self.dead_letters.send(key=d.key.encode(), value=d.message(now_ms), force=True) for d in dead]
        for partition, messages in self._per_partition(result).items():
            pending += [await self.updates.send(key=b"", value=value, partition=partition, force=True)
                        for value in pack_internal(messages)]
        learning = await self._send_learning(result.messages)
        if learning:  # only a text batch learns; its records must not be sent again once the owner has them
            await asyncio.gather(*learning)
        self.processor.learner.confirm(result.covers)
        self.in_flight += pending
        self.metrics.record_stage("publish_updates", time.perf_counter() - sending, events=len(result.updates))
        self.metrics.record_published(self.updates.get_topic_name(), len(result.updates) + len(result.ticks) * self.partitions)
        self.metrics.record_published(self.dead_letters.get_topic_name(), len(dead))
        for d in dead:
            self.metrics.record_dead_letter(str(d.reason))
        self.dead_sent.update(d.key for d in dead)
        # Only records not yet published wait (texts before the warm start, updates waiting for a tick).
        self.to_ack.extend(self.held.release(result.released))
        self.held_since = (self.held_since or time.monotonic()) if self.held else None
        await self._checkpoint_then_ack()

    def _per_partition(self, result: BatchResult) -> dict[int, list[Update | Tick]]:
        """Updates and ticks in event-time order (``BatchResult.ticks_before``) per internal partition;
        an update goes to its user's partition, a tick to every partition."""
        out: dict[int, list[Update | Tick]] = {}
        sent = 0
        for tick, before in [*zip(result.ticks, result.ticks_before), (None, len(result.updates))]:
            for u in result.updates[sent:before]:
                out.setdefault(user_partition(u["user_id"], self.partitions), []).append(u)
            sent = before
            if tick is not None:
                for p in range(self.partitions):
                    out.setdefault(p, []).append(make_tick(tick))
        return out

    def _process(
        self, records: list[Record], force_fit: bool, highwaters: dict[str, int | None] | None
    ) -> BatchResult:
        """In the executor: take a newer model version (and rescan after a rebalance) before the batch."""
        if self.reassigned:
            self.rescan()
        self._take_model()
        self._resume_stalled(highwaters or {})
        return self.processor.process(records, force_fit=force_fit, highwaters=highwaters)

    def _resume_stalled(self, highwaters: Mapping[str, int | None]) -> None:
        """Tell the watermark where reading of silent partitions started, or that nothing readable is left
        before their end (asked at most once per idleness period, and once per end offset of a partition,
        in a thread of its own so that a slow broker never holds a batch up; the answer is used by the
        next batch).

        Without it a partition that gets no record after a restart or a rebalance, or whose last write
        was a transaction (its commit marker is an offset no consumer receives), would hold event time
        (ticks, churn checks, views) back until its next record, which may be days away.
        """
        if self.offsets_query is not None:
            query, asked = self.offsets_query
            if not query.done():
                return
            self.offsets_query = None
            try:
                reached, ends = query.result()
                self.processor.clock.resume_from({**reached, **ends})
                for source in set(asked) - set(ends):  # a record was still to come: ask again next period
                    self.stall_asked.pop(source, None)
            except Exception:  # noqa: BLE001 - the broker may be unreachable for a moment: asked again next period
                log.warning("could not read committed offsets of %s; asking again in %.0f s", asked,
                            self.settings.idle_partition_seconds, exc_info=True)
                for source in asked:
                    self.stall_asked.pop(source, None)
        now = time.monotonic()
        stalled = [s for s in self.processor.clock.stalled(highwaters, now) if self.stall_asked.get(s) != highwaters[s]]
        if not stalled or now - self.offsets_checked < self.settings.idle_partition_seconds:
            return
        self.offsets_checked = now
        for source in stalled:
            self.stall_asked[source] = highwaters[source]  # type: ignore[assignment]  # stalled: end is known
        topics = sorted({s.rpartition("/")[0] for s in stalled})

        read = {s: self.processor.clock.partition_next.get(s, 0) for s in stalled}

        def ask() -> tuple[dict[str, int], dict[str, int]]:
            committed = committed_offsets(self.settings, self.settings.app_id, topics, timeout=5.0)
            reached = {s: max(read[s], committed.get(s, 0)) for s in stalled}
            # A transactional producer's last commit marker (or an aborted tail) is never delivered: past it
            # the partition is read to its end, and must not hold event time for everyone.
            return reached, data_ends(self.settings, reached, timeout=5.0)

        self.offsets_query = (self.offsets_pool.submit(ask), stalled)

    async def _send_learning(self, messages: list[dict[str, Any]]) -> list[Any]:
        """Queue this batch's learning for the model owner; the caller awaits delivery before acking."""
        futures = [await self.learning.send(key=self.sender, value=orjson.dumps(m), force=True) for m in messages]
        self.metrics.record_published(self.learning.get_topic_name(), len(messages))
        return futures

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

    async def _checkpoint_then_ack(self) -> None:
        """At most once per ``checkpoint_interval``: persist the model, then ack what it has learned from.

        Acking only after the checkpoint means a crash redelivers every record whose learning
        was not saved, so learning is neither lost nor applied twice; batching the fsync keeps
        it off the latency path of small micro-batches.
        """
        if time.monotonic() - self.last_checkpoint < self.checkpoint_interval:
            return
        await self._delivered()
        if self.dirty:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._save_checkpoint)
            self.dirty = False
        for stream, event in self.to_ack:
            await stream.ack(event)
        self.to_ack.clear()
        self.last_checkpoint = time.monotonic()

    async def _delivered(self) -> None:
        """Wait until the broker has every update, tick and dead letter handed over so far.

        Called before a batch's outputs are sent, so at most one batch is in flight and a pack that
        failed is never followed by a later one on its partition (stage 2 would then skip the failed
        updates as applied when they come again), and before any ack. A failed delivery stops the
        worker: nothing more is acked in this process, and a restart reads from the committed offsets.
        """
        futures = self.in_flight
        if not futures:
            return
        await asyncio.wait(futures)  # kept in in_flight meanwhile: a cancelled wait forgets nothing
        self.in_flight = []
        failed = next((e for e in map(_failure, futures) if e is not None), None)
        if failed is None:
            return
        self.to_ack.clear()
        self.held.clear()
        self.undelivered = failed
        log.error("an output of stage 1 was not delivered (%r): stopping the worker, which reads again from "
                  "the committed offsets when restarted", failed)
        if self.crash is not None:
            await self.crash(failed)
        raise failed

    async def forget_terms(self, terms: Mapping[str, Mapping[str, int]], user: str, ref: ForgetRef) -> None:
        """Ask the model owner to take a forgotten user's words, snippets and writer tag out of the model.

        Awaited until the broker has it: stage 2 deletes the profile only after, and a redelivered request
        sends them again under the same ``ref``, which the owner takes out once."""
        async with self.lock:  # not while a batch runs in the executor (an in-process owner is shared)
            messages = self.processor.forget(terms, user, ref)
        await asyncio.gather(*await self._send_learning(messages))

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
        checkpoint.write_atomic(self.checkpoint_path, orjson.dumps(self.processor.state()))

    async def assign_texts(self, texts: list[str], kind: str) -> dict[str, Any]:
        """For GET /model/assign: the worker's current model applied to probe texts (on the encoder's thread)."""
        self._take_model()
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, lambda: self.processor.assign_texts(texts, kind))

    def clusters(self) -> dict[str, Any]:
        """Cluster sizes, keywords and snippets of the model version this worker assigns with, for GET /clusters."""
        view = self.processor.view
        if view is None:
            return {"model_version": self.processor.model_version, "fitted": False, "texts_learned": 0,
                    "clusters": [], "topics": []}
        topic_of = {c: view.topic_of.get(c, c) for c in range(view.k)}
        return {
            "model_version": self.processor.model_version,
            "fitted": True,
            "texts_learned": view.seen,
            "clusters": [
                {"cluster": c, "topic": topic_of[c], "size": round(float(view.sizes[c]), 2),
                 "keywords": list(view.keywords.get(c, [])), "examples": list(view.examples.get(c, []))}
                for c in range(view.k)
            ],
            "topics": [
                {"topic": t, "clusters": [c for c in range(view.k) if topic_of[c] == t],
                 "size": round(sum(float(view.sizes[c]) for c in range(view.k) if topic_of[c] == t), 2),
                 "keywords": list(view.topic_keywords.get(t, []))}
                for t in sorted(set(topic_of.values()))
            ],
        }
