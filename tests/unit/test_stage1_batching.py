"""Stage 1's continuous batching and its acks, with a fake processor in place of the model.

The fake processor blocks until the test lets it go, which stands for a busy encoder; the
Faust stream, topics and events are minimal fakes of what :class:`EncodeStage` touches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stream.config import Settings
from stream.core.messages import unpack_internal
from stream.core.watermark import Watermark
from stream.worker.metrics import Metrics
from stream.worker.pipeline import BatchResult, Record
from stream.worker.stage1 import EncodeStage, user_partition


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None = b"u"
    value: bytes | None = b"{}"
    timestamp: float | None = None


@dataclass
class FakeEvent:
    message: FakeMessage


class FakeStream:
    """What the encode agent iterates: events from a queue; acks recorded (manual, as with ``noack``)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[FakeEvent] = asyncio.Queue()
        self.acked: list[int] = []

    def noack(self) -> FakeStream:
        return self

    async def events(self) -> AsyncIterator[FakeEvent]:
        while True:
            yield await self.incoming.get()

    async def ack(self, event: FakeEvent) -> bool:
        self.acked.append(event.message.offset)
        return True


class FakeTopic:
    """Delivered at once, or (``hold``) only when the test settles the futures in ``deliveries``."""

    def __init__(self, name: str, hold: bool = False) -> None:
        self.name = name
        self.hold = hold
        self.sent: list[Any] = []
        self.deliveries: list[asyncio.Future] = []

    async def send(self, *, key: bytes, value: Any, partition: int | None = None, force: bool = False) -> asyncio.Future:
        self.sent.append(value)
        done = asyncio.get_running_loop().create_future()
        if not self.hold:
            done.set_result(None)
        self.deliveries.append(done)
        return done

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class FakeProcessor:
    """Records every batch; each call waits for ``go`` (set by default), i.e. the encoder is busy until then."""

    batches: list[list[int]] = field(default_factory=list)
    go: threading.Event = field(default_factory=threading.Event)
    fail: bool = False
    encoder: Any = field(default_factory=lambda: SimpleNamespace(version="fake"))
    clock: Any = field(default_factory=Watermark)
    learner: Any = field(default_factory=lambda: SimpleNamespace(confirm=lambda covers: None))
    watermark: int = 0
    learns: bool = False  # each batch also has learning for the model owner

    def __post_init__(self) -> None:
        self.go.set()

    def state(self) -> dict[str, Any]:
        return {"checkpoint": len(self.batches)}

    def process(self, records: list[Record], *, force_fit: bool, highwaters: Any) -> BatchResult:
        assert self.go.wait(10), "the test never released the processor"
        if self.fail:
            raise RuntimeError("encoder exploded")
        self.batches.append([r.offset for r in records])
        result = BatchResult(updates=[
            {"user_id": "u", "source": r.source, "offset": r.offset, "kind": "review"} for r in records
        ], released=[(r.source, r.offset) for r in records])
        if self.learns and records:
            result.messages, result.covers = [{"type": "learn"}], {records[0].source: records[-1].offset}
        return result


def make_stage(processor: FakeProcessor, tmp_path: Path, *, max_batch: int = 256,
               checkpoint_interval: float = 0.0, hold: bool = False) -> tuple[EncodeStage, FakeTopic]:
    updates = FakeTopic("profile-updates", hold=hold)
    stage = EncodeStage(
        processor,  # type: ignore[arg-type]
        tmp_path / "clustering.ckpt",
        updates=updates,  # type: ignore[arg-type]
        dead_letters=FakeTopic("dead-letters"),  # type: ignore[arg-type]
        partitions=1,
        highwaters=dict,
        warmup_max_wait=30.0,
        checkpoint_interval=checkpoint_interval,
        metrics=Metrics(),
        learning=FakeTopic("learning"),  # type: ignore[arg-type]
        follower=SimpleNamespace(latest=None, position=-1),  # type: ignore[arg-type]
        settings=Settings(),
        max_batch=max_batch,
    )
    return stage, updates


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting until {what}")


@contextlib.asynccontextmanager
async def consuming(stage: EncodeStage, stream: FakeStream) -> AsyncIterator[None]:
    """The encode agent running on ``stream`` for the block, then cancelled."""
    agent = asyncio.ensure_future(stage.consume(stream))  # type: ignore[arg-type]
    try:
        yield
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def event(offset: int) -> FakeEvent:
    return FakeEvent(FakeMessage("reviews", 0, offset))


def test_a_lone_event_is_processed_at_once_and_events_that_come_meanwhile_form_the_next_batch(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, updates = make_stage(processor, tmp_path)
    stream = FakeStream()

    async def scenario() -> None:
        async with consuming(stage, stream):
            processor.go.clear()  # the encoder will be busy with the first batch
            stream.incoming.put_nowait(event(0))
            await until(lambda: not stage.queued and stage.lock.locked(), "the first event is being processed")
            for offset in range(1, 6):
                stream.incoming.put_nowait(event(offset))
            await until(lambda: len(stage.queued) == 5, "the next events are queued behind the busy encoder")
            processor.go.set()
            await until(lambda: len(processor.batches) == 2, "the second batch ran")

    run(scenario)
    # No timer tick ran: the first event did not wait for a window, and the five that came
    # while it was encoded were taken together, in order.
    assert processor.batches == [[0], [1, 2, 3, 4, 5]]
    assert [u["offset"] for value in updates.sent for u in unpack_internal(value)] == [0, 1, 2, 3, 4, 5]


def test_batches_never_exceed_max_batch_and_the_agent_waits_when_the_queue_is_full(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, _ = make_stage(processor, tmp_path, max_batch=3)
    stream = FakeStream()

    async def scenario() -> None:
        async with consuming(stage, stream):
            processor.go.clear()
            stream.incoming.put_nowait(event(0))
            await until(lambda: stage.lock.locked(), "the first batch started")
            for offset in range(1, 10):
                stream.incoming.put_nowait(event(offset))
            await until(lambda: len(stage.queued) == 3, "the queue filled")
            await asyncio.sleep(0.05)
            assert len(stage.queued) == 3 and stream.incoming.qsize() == 5, "the agent must stop taking events"
            processor.go.set()
            await until(lambda: sum(map(len, processor.batches)) == 10, "everything processed")

    run(scenario)
    assert all(len(b) <= 3 for b in processor.batches)
    assert [o for b in processor.batches for o in b] == list(range(10))


def test_nothing_is_acked_before_the_checkpoint_and_a_tick_alone_lets_time_pass(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, _ = make_stage(processor, tmp_path, checkpoint_interval=3600.0)
    stream = FakeStream()

    async def scenario() -> None:
        async with consuming(stage, stream):
            for offset in range(4):
                stream.incoming.put_nowait(event(offset))
            await until(lambda: sum(map(len, processor.batches)) == 4, "the events were processed")
            assert stream.acked == [] and not (tmp_path / "clustering.ckpt").exists()
            stage.checkpoint_interval = 0.0
            calls = len(processor.batches)
            stage.tick()  # no record comes: the timer alone makes the task run (and checkpoint, then ack)
            await until(lambda: len(processor.batches) == calls + 1, "the tick ran an empty batch")
            await until(lambda: len(stream.acked) == 4, "the acks")

    run(scenario)
    assert processor.batches[-1] == []
    assert json.loads((tmp_path / "clustering.ckpt").read_bytes()) == {"checkpoint": len(processor.batches)}
    assert sorted(stream.acked) == [0, 1, 2, 3]


@dataclass
class OutOfOrderProcessor(FakeProcessor):
    """Offset 0 waits in the outbox (a late event time) while later records go out; the next batch releases it."""

    waiting: bool = True

    def process(self, records: list[Record], *, force_fit: bool, highwaters: Any) -> BatchResult:
        result = super().process(records, force_fit=force_fit, highwaters=highwaters)
        if self.waiting and any(r.offset == 0 for r in records):
            result.released = [p for p in result.released if p[1] != 0]
        elif not records:
            result.released = [("reviews/0", 0)]
        return result


def test_a_partition_is_acked_in_offset_order_whatever_order_its_records_leave_the_outbox(tmp_path: Path) -> None:
    """Faust commits past an unacked record at the committed offset once a later one is acked
    (faust-streaming issue 606): a crash would then lose the record still waiting."""
    processor = OutOfOrderProcessor()
    stage, _ = make_stage(processor, tmp_path)
    stream = FakeStream()

    async def scenario() -> None:
        async with consuming(stage, stream):
            for offset in range(3):
                stream.incoming.put_nowait(event(offset))
            await until(lambda: sum(map(len, processor.batches)) == 3, "the events were processed")
            await asyncio.sleep(0.05)
            assert stream.acked == [], "1 and 2 left the outbox, but 0 has not: nothing may be acked"
            stage.tick()
            await until(lambda: len(stream.acked) == 3, "the acks once 0 is released")

    run(scenario)
    assert stream.acked == [0, 1, 2]


def test_a_failing_batch_stops_the_agent_without_acking(tmp_path: Path) -> None:
    processor = FakeProcessor(fail=True)
    stage, _ = make_stage(processor, tmp_path)
    stream = FakeStream()

    async def scenario() -> None:
        agent = asyncio.ensure_future(stage.consume(stream))  # type: ignore[arg-type]
        stream.incoming.put_nowait(event(0))
        await until(lambda: stage.failed is not None, "the batch failed")
        stream.incoming.put_nowait(event(1))
        with pytest.raises(RuntimeError, match="encoder exploded"):
            await agent

    run(scenario)
    assert stream.acked == []


def test_the_next_batch_is_processed_while_the_last_is_delivered_and_sent_only_after(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, updates = make_stage(processor, tmp_path, hold=True, checkpoint_interval=3600.0)
    stream = FakeStream()

    async def scenario() -> None:
        async with consuming(stage, stream):
            stream.incoming.put_nowait(event(0))
            await until(lambda: len(updates.deliveries) == 1, "the first batch was handed to the producer")
            stream.incoming.put_nowait(event(1))
            await until(lambda: len(processor.batches) == 2, "the second batch ran while the first was undelivered")
            await asyncio.sleep(0.05)
            assert len(updates.deliveries) == 1, "at most one batch in flight: the second waits to send"
            assert stream.acked == [], "nothing is acked before delivery"
            stage.checkpoint_interval = 0.0
            updates.hold = False
            updates.deliveries[0].set_result(None)
            await until(lambda: sorted(stream.acked) == [0, 1], "the acks after delivery")

    run(scenario)


def test_learning_counts_as_sent_only_once_delivered_and_the_next_batch_waits_for_it(tmp_path: Path) -> None:
    confirmed: list[Any] = []
    processor = FakeProcessor(learner=SimpleNamespace(confirm=confirmed.append), learns=True)
    stage, _ = make_stage(processor, tmp_path)
    stage.learning = learning = FakeTopic("learning", hold=True)  # type: ignore[assignment]
    stream = FakeStream()

    async def scenario() -> None:
        async with consuming(stage, stream):
            stream.incoming.put_nowait(event(0))
            await until(lambda: len(learning.deliveries) == 1, "the batch's learning was handed to the producer")
            stream.incoming.put_nowait(event(1))
            await asyncio.sleep(0.05)
            assert processor.batches == [[0]] and confirmed == [], "redelivered texts would be sent again"
            learning.deliveries[0].set_result(None)
            await until(lambda: len(processor.batches) == 2, "the next batch after delivery")

    run(scenario)
    assert confirmed[0] == {"reviews/0": 0}


def test_a_failed_delivery_stops_the_worker_and_nothing_is_acked_even_after_a_restart(tmp_path: Path) -> None:
    processor = FakeProcessor()
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    stage, updates = make_stage(processor, tmp_path, hold=True)
    stage.crash = crash
    stream = FakeStream()

    async def scenario() -> None:
        agent = asyncio.ensure_future(stage.consume(stream))  # type: ignore[arg-type]
        stream.incoming.put_nowait(event(0))
        await until(lambda: len(updates.deliveries) == 1, "the batch was handed to the producer")
        updates.deliveries[0].set_exception(RuntimeError("broker said no"))
        stream.incoming.put_nowait(event(1))  # processed, but never sent: the last batch failed
        await until(lambda: stage.failed is not None, "the delivery failure reached the batching task")
        stream.incoming.put_nowait(event(2))
        with pytest.raises(RuntimeError, match="broker said no"):
            await agent
        with pytest.raises(RuntimeError, match="broker said no"):  # Faust's supervisor restarts the agent
            await stage.consume(stream)  # type: ignore[arg-type]
        stage.tick()
        await asyncio.sleep(0.05)

    run(scenario)
    assert stream.acked == [] and not stage.to_ack and not stage.held
    assert len(updates.deliveries) == 1, "no later batch was sent after the failed one"
    assert [str(e) for e in crashed] == ["broker said no"]


@pytest.mark.parametrize(("key", "java_murmur2"), [
    ("21", -973932308), ("foobar", -790332482), ("a-little-bit-long-string", -985981536),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971), ("abc", 479470107),
])
def test_a_users_internal_partition_is_the_one_kafkas_default_partitioner_picks(key: str, java_murmur2: int) -> None:
    # Values of Kafka's own Utils.murmur2 (its UtilsTest): the producer, Faust's table routing and this agree.
    for partitions in (1, 4, 7, 12):
        assert user_partition(key, partitions) == (java_murmur2 & 0x7FFFFFFF) % partitions


def test_updates_and_ticks_keep_event_time_order_in_every_partition(tmp_path: Path) -> None:
    stage, _ = make_stage(FakeProcessor(), tmp_path)
    stage.partitions = 3
    users = [f"user-{i}" for i in range(12)]
    updates = [{"user_id": u, "offset": i, "kind": "order"} for i, u in enumerate(users)]
    result = BatchResult(updates=updates, ticks=[100, 200], ticks_before=[4, 9])  # type: ignore[arg-type]
    packs = stage._per_partition(result)
    assert set(packs) == {0, 1, 2}
    for partition, messages in packs.items():
        offsets_before_ticks, seen = [], []
        for m in messages:
            if m["kind"] == "tick":
                offsets_before_ticks.append(list(seen))
            else:
                assert user_partition(m["user_id"], 3) == partition
                seen.append(m["offset"])
        assert [m["watermark"] for m in messages if m["kind"] == "tick"] == [100, 200]
        assert seen == sorted(seen)
        assert offsets_before_ticks == [[o for o in seen if o < 4], [o for o in seen if o < 9]]
    assert sorted(m["offset"] for ms in packs.values() for m in ms if m["kind"] != "tick") == list(range(12))


def test_batches_grow_to_the_backlog_size_only_while_a_backlog_waits(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, _ = make_stage(processor, tmp_path, max_batch=2)
    stage.backlog_batch = 8
    processor.clock.read("reviews/0", 0, now=time.monotonic())  # one record read: the position is known
    assert stage._cap({"reviews/0": 5, "reviews/1": 100}) == 2, "a partition never read does not count"
    assert stage._cap({"reviews/0": 9}) == 8, "8 records wait to be read"
    assert stage._cap({"reviews/0": 8}) == 2
    stream = FakeStream()
    end = {"reviews/0": 1000}
    stage.highwaters = lambda: dict(end)

    async def scenario() -> None:
        async with consuming(stage, stream):
            processor.go.clear()
            for offset in range(1, 20):
                stream.incoming.put_nowait(event(offset))
            await until(lambda: len(stage.queued) == 8, "the queue fills to the backlog size")
            processor.go.set()
            await until(lambda: sum(map(len, processor.batches)) == 19, "everything processed")

    run(scenario)
    assert max(map(len, processor.batches)) == 8
