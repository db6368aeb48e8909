"""Stage 2's shell without Kafka: the order of its effects when a worker dies in the middle of a forget."""

from __future__ import annotations

import asyncio

import pytest

from stream.core.messages import pack_internal
from stream.core.shared_model import ForgetRef
from stream.core.stage2 import ProfileStage
from stream.worker.apply import ApplyStage
from stream.worker.dashboard import RecentAlerts
from stream.worker.metrics import Metrics

from .test_stage2 import RULES, T0, forget, order, review


class Crash(Exception):
    """The worker dies here."""


class World:
    """What leaves stage 2: sends and the forget requests that reached the model owner."""

    def __init__(self, crash_on_forget: bool = False) -> None:
        self.sent: list[tuple[str, str, bytes | None]] = []
        self.owner: list[tuple[dict, str, ForgetRef]] = []
        self.crash_on_forget = crash_on_forget

    async def send(self, topic: str, user: str, value: bytes | None) -> None:
        self.sent.append((topic, user, value))

    async def forget_terms(self, terms: dict, user: str, ref: ForgetRef) -> None:
        self.owner.append((terms, user, ref))  # delivered ...
        if self.crash_on_forget:
            raise Crash  # ... and the worker dies before the next step


def applying(table: dict, forgotten: dict, world: World) -> ApplyStage:
    return ApplyStage(ProfileStage(table, forgotten, RULES, lambda: T0), send=world.send,
                      forget_terms=world.forget_terms, topic_profiles="profiles", topic_alerts="alerts",
                      metrics=Metrics(), recent_alerts=RecentAlerts())


def run(stage: ApplyStage, record: bytes, offset: int) -> None:
    asyncio.run(stage.record(record, topic="updates", partition=3, offset=offset, timestamp=None))


def test_a_worker_dying_after_a_forget_reached_the_owner_sends_the_same_request_again() -> None:
    table: dict = {}
    forgotten: dict = {}
    [history] = pack_internal([review(0, T0), order(1, T0, user="u2")])
    run(applying(table, forgotten, World()), history, offset=10)
    [request] = pack_internal([order(2, T0, user="u2"), forget(0)])
    dying = World(crash_on_forget=True)
    with pytest.raises(Crash):
        run(applying(table, forgotten, dying), request, offset=11)
    assert "u1" in table, "the profile is deleted only after its words reached the owner"
    restarted = World()
    run(applying(table, forgotten, restarted), request, offset=11)  # redelivered from the committed offset
    assert dying.owner == restarted.owner == [({"2": {"作者": 1, "情节": 1}}, "u1", ForgetRef("updates/3", 11, 1))]
    assert "u1" not in table and ("profiles", "u1", None) in restarted.sent
    again = World()
    run(applying(table, forgotten, again), request, offset=11)
    assert again.owner == [], "once applied, a redelivered request has nothing to send"


class Message:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset, self.timestamp = "updates", 3, offset, None


class Event:
    def __init__(self, value: bytes, offset: int) -> None:
        self.value, self.message = value, Message(offset)


class Stream:
    """What ``ApplyStage.consume`` uses of a Faust stream: manual acks over events."""

    def __init__(self, events: list[Event]) -> None:
        self.queued, self.acked = events, []

    def noack(self) -> Stream:
        return self

    async def events(self):  # noqa: ANN201
        for event in self.queued:
            yield event

    async def ack(self, event: Event) -> None:
        self.acked.append(event.message.offset)


def test_a_record_that_fails_is_not_acked_stops_the_worker_and_a_restarted_agent_acks_nothing() -> None:
    table: dict = {}
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    world = World(crash_on_forget=True)
    stage = applying(table, {}, world)
    stage.crash = crash
    [history] = pack_internal([review(0, T0)])
    [request] = pack_internal([forget(0)])
    [later] = pack_internal([order(1, T0, user="u2")])
    stream = Stream([Event(history, 10), Event(request, 11), Event(later, 12)])
    with pytest.raises(Crash):
        asyncio.run(stage.consume(stream))
    assert stream.acked == [10], "Faust would have acked the failed record and committed past it"
    assert len(crashed) == 1 and "u1" in table and "u2" not in table
    again = Stream([Event(later, 12)])
    with pytest.raises(Crash):  # Faust's supervisor restarts the agent: it must not go on acking
        asyncio.run(stage.consume(again))
    assert again.acked == [] and "u2" not in table
