"""Stage 1's continuous batching and its acks, with a fake processor in place of the model.

The fake processor blocks until the test lets it go, which stands for a busy encoder; the
Faust stream, topics and events are minimal fakes of what :class:`EncodeStage` touches.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stream.config import Settings
from stream.worker.metrics import Metrics
from stream.worker.pipeline import BatchResult, Record
from stream.worker.stage1 import EncodeStage


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
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Any] = []

    async def send(self, *, key: bytes, value: Any, partition: int | None = None, force: bool = False) -> asyncio.Future:
        self.sent.append(value)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
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
    clock: Any = field(default_factory=lambda: SimpleNamespace(partition_next={}))
    learner: Any = field(default_factory=lambda: SimpleNamespace(confirm=lambda covers: None))
    watermark: int = 0

    def __post_init__(self) -> None:
        self.go.set()

    def state(self) -> dict[str, Any]:
        return {"checkpoint": len(self.batches)}

    def process(self, records: list[Record], *, force_fit: bool, highwaters: Any) -> BatchResult:
        assert self.go.wait(10), "the test never released the processor"
        if self.fail:
            raise RuntimeError("encoder exploded")
        self.batches.append([r.offset for r in records])
        return BatchResult(updates=[
            {"user_id": "u", "source": r.source, "offset": r.offset, "kind": "review"} for r in records
        ], released=[(r.source, r.offset) for r in records])


def make_stage(processor: FakeProcessor, tmp_path: Path, *, max_batch: int = 256,
               checkpoint_interval: float = 0.0) -> tuple[EncodeStage, FakeTopic]:
    updates = FakeTopic("profile-updates")
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


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def event(offset: int) -> FakeEvent:
    return FakeEvent(FakeMessage("reviews", 0, offset))


def test_a_lone_event_is_processed_at_once_and_events_that_come_meanwhile_form_the_next_batch(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, updates = make_stage(processor, tmp_path)
    stream = FakeStream()

    async def scenario() -> None:
        agent = asyncio.ensure_future(stage.consume(stream))  # type: ignore[arg-type]
        processor.go.clear()  # the encoder will be busy with the first batch
        stream.incoming.put_nowait(event(0))
        await until(lambda: not stage.queued and stage.lock.locked(), "the first event is being processed")
        for offset in range(1, 6):
            stream.incoming.put_nowait(event(offset))
        await until(lambda: len(stage.queued) == 5, "the next events are queued behind the busy encoder")
        processor.go.set()
        await until(lambda: len(processor.batches) == 2, "the second batch ran")
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)

    run(scenario)
    # No timer tick ran: the first event did not wait for a window, and the five that came
    # while it was encoded were taken together, in order.
    assert processor.batches == [[0], [1, 2, 3, 4, 5]]
    assert [u["offset"] for u in updates.sent] == [0, 1, 2, 3, 4, 5]


def test_batches_never_exceed_max_batch_and_the_agent_waits_when_the_queue_is_full(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, _ = make_stage(processor, tmp_path, max_batch=3)
    stream = FakeStream()

    async def scenario() -> None:
        agent = asyncio.ensure_future(stage.consume(stream))  # type: ignore[arg-type]
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
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)

    run(scenario)
    assert all(len(b) <= 3 for b in processor.batches)
    assert [o for b in processor.batches for o in b] == list(range(10))


def test_nothing_is_acked_before_the_checkpoint_and_a_tick_alone_lets_time_pass(tmp_path: Path) -> None:
    processor = FakeProcessor()
    stage, _ = make_stage(processor, tmp_path, checkpoint_interval=3600.0)
    stream = FakeStream()

    async def scenario() -> None:
        agent = asyncio.ensure_future(stage.consume(stream))  # type: ignore[arg-type]
        for offset in range(4):
            stream.incoming.put_nowait(event(offset))
        await until(lambda: sum(map(len, processor.batches)) == 4, "the events were processed")
        assert stream.acked == [] and not (tmp_path / "clustering.ckpt").exists()
        stage.checkpoint_interval = 0.0
        calls = len(processor.batches)
        stage.tick()  # no record comes: the timer alone makes the task run (and checkpoint, then ack)
        await until(lambda: len(processor.batches) == calls + 1, "the tick ran an empty batch")
        await until(lambda: len(stream.acked) == 4, "the acks")
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)

    run(scenario)
    assert processor.batches[-1] == []
    assert json.loads((tmp_path / "clustering.ckpt").read_bytes()) == {"checkpoint": len(processor.batches)}
    assert sorted(stream.acked) == [0, 1, 2, 3]


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
