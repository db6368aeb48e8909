"""Input from transactional producers (Kafka Streams, Flink, any exactly-once writer) on a real broker.

A transaction ends with a commit or abort marker: an offset no consumer ever receives. Read
uncommitted, an aborted record would count as an event; and a quiet partition whose last write
was a transaction looks unread forever (its end offset is past everything delivered), which held
event time, and with it every later update, for every user until that partition's next record.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from stream.core.profile import DAY_MS
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import data_ends, topic_offsets
from stream.kafka.topics import ensure_topics

from .worker_process import latest_profiles

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = 1_767_225_600_000  # 2026-01-01


def transactional(settings) -> Producer:  # noqa: ANN001
    producer = Producer({"bootstrap.servers": settings.broker, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    return producer


def order(user: str, ts: int, amount: str, n: int) -> bytes:
    return json.dumps({"event_id": f"{user}-{n}", "user_id": user, "ts": ts, "order_id": f"o-{user}-{n}",
                       "amount": amount, "currency": "CNY", "items": 1}).encode()


def write(producer: Producer, topic: str, partition: int, records: list[tuple[str, bytes]], *, commit: bool) -> None:
    producer.begin_transaction()
    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value, partition=partition)
    assert producer.flush(30) == 0  # on the broker before the abort, as when a writer fails mid-transaction
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def test_data_ends_sees_past_markers_and_aborted_records_but_not_past_a_record(broker, settings_factory) -> None:
    settings = settings_factory(broker.bootstrap)
    ensure_topics(settings)
    topic = settings.topic_orders
    producer = transactional(settings)
    write(producer, topic, 0, [("a", b"1"), ("a", b"2")], commit=True)  # offsets 0, 1; marker 2
    write(producer, topic, 0, [("a", b"3")], commit=False)  # 3 aborted; marker 4
    end = topic_offsets(settings, topic)[0][1]
    assert end == 5
    assert data_ends(settings, {f"{topic}/0": 2}) == {f"{topic}/0": 5}, "only markers and an aborted record left"
    assert data_ends(settings, {f"{topic}/0": 1}) == {}, "record 1 is still to be read"
    assert data_ends(settings, {f"{topic}/0": 50}) == {}, "out of range: read from the log start, where records are"
    plain = Producer({"bootstrap.servers": settings.broker})
    for value in (b"x", b"y", b"z"):
        plain.produce(topic, key=b"c", value=value, partition=2)
    assert plain.flush(30) == 0
    admin = AdminClient({"bootstrap.servers": settings.broker})
    [done] = admin.delete_records([TopicPartition(topic, 2, 3)]).values()
    done.result(30)  # retention took every record: the log starts at its end
    assert data_ends(settings, {f"{topic}/2": 0}) == {f"{topic}/2": 3}, "nothing left to read below the end"
    plain.produce(topic, key=b"b", value=b"x", partition=1)
    assert plain.flush(30) == 0
    assert data_ends(settings, {f"{topic}/1": 1}) == {f"{topic}/1": 1}, "an ordinary partition read to its end"


def test_aborted_orders_never_count_and_a_transactional_partition_at_rest_does_not_hold_event_time(
    broker, settings_factory, tmp_path: Path
) -> None:
    settings = settings_factory(broker.bootstrap, idle_partition_seconds=2.0)
    ensure_topics(settings)
    producer = transactional(settings)
    with WorkerProcess(settings, tmp_path) as worker:
        plain = Producer({"bootstrap.servers": settings.broker})
        plain.produce(settings.topic_orders, key=b"later", value=order("later", T0 + DAY_MS, "5.00", 0), partition=1)
        assert plain.flush(30) == 0
        write(producer, settings.topic_orders, 0, [("tx", order("tx", T0, "10.00", 0))], commit=True)
        write(producer, settings.topic_orders, 0, [("tx", order("tx", T0 + 3_600_000, "999.00", 1))], commit=False)
        deadline = time.monotonic() + 90
        latest: dict[str, dict] = {}
        while time.monotonic() < deadline and not {"tx", "later"} <= set(latest):
            worker.check_alive()
            latest = latest_profiles(settings)
            time.sleep(1.0)
        assert {"tx", "later"} <= set(latest), f"profiles held: {sorted(latest)}\n{worker.log_tail()}"
        assert latest["tx"]["consumption"]["orders_total"] == 1
        assert latest["tx"]["consumption"]["monetary_total"] == "10.00", "an aborted order counted"
        status, health = worker.http_get("/health")
        assert status == 200 and health["watermark"] >= T0 + DAY_MS - settings.lateness_seconds * 1000, health
