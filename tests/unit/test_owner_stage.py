"""When the model owner writes its whole state: the rule that bounds what a successor must replay."""

from __future__ import annotations

from stream.config import Settings
from stream.core.clustering import OnlineClusterer
from stream.core.model_owner import ModelOwner
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
