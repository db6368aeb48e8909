"""The model owner's shell without a broker: when it writes its whole state, and what it reads back."""

from __future__ import annotations

import asyncio

import orjson

from stream.config import Settings
from stream.core.clustering import OnlineClusterer
from stream.core.model_owner import ModelOwner
from stream.kafka import model_topics
from stream.worker.owner import OwnerStage


def stage_with_owner(interval: float = 10.0) -> OwnerStage:
    stage = OwnerStage(Settings(model_state_interval=interval), "enc@1")
    stage.owner = ModelOwner(OnlineClusterer(k=2, warmup=4, seed=0), encoder_version="enc@1")
    return stage


def test_the_state_is_due_with_the_first_version_after_a_load() -> None:
    stage = stage_with_owner()
    assert stage._state_due(now=0.0)


def test_the_state_waits_for_the_interval_and_for_new_learning() -> None:
    stage = stage_with_owner(interval=10.0)
    stage.owner.position = 5
    stage.state_written = (100.0, 5, 0)
    assert not stage._state_due(now=200.0), "nothing merged since: the state is current"
    stage.owner.position = 6
    assert not stage._state_due(now=109.0)
    assert stage._state_due(now=110.0)


def test_a_forget_makes_the_state_due_at_once() -> None:
    stage = stage_with_owner(interval=10.0)
    stage.owner.position = 5
    stage.state_written = (100.0, 5, 0)
    stage.owner.receive({"type": "forget", "tag": "t", "terms": {}}, position=6)
    assert stage._state_due(now=100.5), "a forgotten writer's words must not wait in the last state"


def fitted_stage() -> OwnerStage:
    from tests.unit.test_model_owner import warmed

    stage = OwnerStage(Settings(model_state_interval=10.0), "enc@1")
    stage.owner, _ = warmed()
    stage.owner.publish()
    stage.reload = False
    return stage


def test_an_owner_whose_partition_moved_writes_no_state_from_its_timer() -> None:
    stage = fitted_stage()
    written: list[object] = []
    stage._write_state = written.append  # type: ignore[method-assign]
    stage.reload = True  # set on every assignment: another worker may now own the model, with a newer state
    asyncio.run(stage.on_timer())
    assert written == [], "an older state must never overwrite the new owner's"
    stage.reload = False
    asyncio.run(stage.on_timer())
    assert written == [None], "due (never written by this owner): written alone from the timer"


def test_a_state_the_broker_refuses_from_the_timer_is_retried_not_fatal(caplog) -> None:
    stage = fitted_stage()

    def refused(_view: object) -> None:
        raise RuntimeError("model state of version 1 not published: flush timed out")

    stage._write_state = refused  # type: ignore[method-assign]
    asyncio.run(stage.on_timer())  # a timer that raises crashes the Faust worker
    assert "model state not written" in caplog.text and stage.state_written is None


def test_sent_since_reads_the_learning_topic_to_its_end(monkeypatch) -> None:
    records = [(150 + i, orjson.dumps({"type": "learn", "parts": [{"source": f"r/{i % 2}", "first": i, "last": i}]}))
               for i in range(100)]
    asked: list[tuple] = []

    def fake_records(settings, topic, start, timeout, stop=None):
        asked.append((start, timeout, stop))
        return iter([r for r in records if r[0] >= start and (stop is None or r[0] < stop)])

    monkeypatch.setattr(model_topics, "_records", fake_records)
    assert model_topics.sent_since(Settings(), 149) == {"r/0": 98, "r/1": 99}
    assert asked == [(150, 60.0, None)]
