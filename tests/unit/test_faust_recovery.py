"""The Faust patch that keeps records across rebalances (stream.worker.faust_recovery), on a real App without a broker.

Faust's own methods are replaced by recorders before the patch is applied, so each test sees
exactly what the patched method does around them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from aiokafka import TopicPartition

from stream.worker.faust_recovery import keep_records_across_rebalances


def app_with(name: str) -> faust.App:
    app = faust.App(name, broker="kafka://127.0.0.1:9", store="memory://")
    app.Table("state", default=None, partitions=2)
    return app


def test_the_flow_is_stopped_before_faust_resumes_partitions_and_resumed_by_faust() -> None:
    app = app_with("rec-flow")
    seen: list[bool] = []

    async def completed(generation_id: int = 0) -> None:
        seen.append(app.consumer.flow_active)  # what Faust's resume/seek/clear would run under
        app.consumer.resume_flow()

    app.tables.recovery.on_recovery_completed = completed
    keep_records_across_rebalances(app)
    app.consumer.resume_flow()
    asyncio.run(app.tables.recovery.on_recovery_completed(3))
    assert seen == [False] and app.consumer.flow_active


def test_a_failed_recovery_does_not_leave_the_consumer_stopped_but_a_new_rebalance_does() -> None:
    from faust.tables.recovery import RebalanceAgain, ServiceStopped

    app = app_with("rec-fail")

    async def timed_out(generation_id: int = 0) -> None:
        raise ServiceStopped()

    async def again(generation_id: int = 0) -> None:
        raise RebalanceAgain()

    app.tables.recovery.on_recovery_completed = timed_out
    keep_records_across_rebalances(app)
    with pytest.raises(ServiceStopped):
        asyncio.run(app.tables.recovery.on_recovery_completed(1))
    assert app.consumer.flow_active, "Faust's recovery loop has ended: a stopped flow would never resume"

    other = app_with("rec-again")
    other.tables.recovery.on_recovery_completed = again
    keep_records_across_rebalances(other)
    with pytest.raises(RebalanceAgain):
        asyncio.run(other.tables.recovery.on_recovery_completed(1))
    assert not other.consumer.flow_active, "the next rebalance's recovery resumes it, after its own seek"


def test_seeking_back_covers_uncommitted_input_partitions_and_standby_replicas() -> None:
    app = app_with("rec-seek")
    changelog = "rec-seek-state-changelog"
    committed = {TopicPartition("in", 0): None, TopicPartition("in", 1): 0, TopicPartition("in", 2): 7,
                 TopicPartition(changelog, 0): None, TopicPartition(changelog, 1): None}
    to_beginning: list[Any] = []
    standby_seeks: list[dict[Any, int]] = []

    async def seek_to_committed() -> dict[Any, int | None]:
        return committed

    async def seek_to_beginning(*tps: Any) -> None:
        to_beginning.extend(tps)

    async def seek_offsets(consumer: Any, tps: set[Any], offsets: Any, title: str) -> None:
        standby_seeks.append({tp: offsets[tp] for tp in tps})

    recovery = app.tables.recovery
    app.consumer.seek_to_committed = seek_to_committed
    app.consumer._thread.seek_to_beginning = seek_to_beginning
    recovery._seek_offsets = seek_offsets
    standby = faust.types.TP(changelog, 1)
    recovery.standby_tps.add(standby)
    recovery.standby_offsets[standby] = 41
    keep_records_across_rebalances(app)

    assert asyncio.run(app.consumer.seek_to_committed()) == committed
    assert sorted(to_beginning) == [TopicPartition("in", 0), TopicPartition("in", 1)], "committed ones stay put"
    assert standby_seeks == [{standby: 41}], "a standby goes back to what its replica has seen; actives are left alone"


def test_fausts_perform_seek_reaches_the_patch() -> None:
    app = app_with("rec-perform")
    rewound: list[Any] = []

    async def seek_to_committed() -> dict[Any, int | None]:
        return {TopicPartition("in", 3): None}

    async def seek_to_beginning(*tps: Any) -> None:
        rewound.extend(tps)

    app.consumer.seek_to_committed = seek_to_committed
    app.consumer._thread.seek_to_beginning = seek_to_beginning
    keep_records_across_rebalances(app)
    asyncio.run(app.consumer.perform_seek())  # what Faust runs after dropping fetched records
    assert rewound == [TopicPartition("in", 3)]


def test_the_livelock_check_skips_a_partition_whose_position_is_not_known_yet() -> None:
    app = app_with("rec-livelock")
    checked: list[Any] = []

    def verify(now: float, tp: Any) -> None:
        checked.append(tp)
        if tp.partition == 0:
            raise AssertionError  # what aiokafka's TopicPartitionState.position raises right after a seek

    app.consumer.verify_event_path = verify  # type: ignore[method-assign]
    keep_records_across_rebalances(app)
    for partition in (0, 1):
        app.consumer.verify_event_path(0.0, TopicPartition("reviews", partition))
    assert [tp.partition for tp in checked] == [0, 1]
