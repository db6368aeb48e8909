"""confluent-kafka clients for the command line: producing feeds and reading topics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from stream.config import Settings
from stream.feed import FeedEvent


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """Idempotent producer; murmur2 partitioning like the Java and Faust clients, so keys co-partition."""
    return Producer(
        {
            "bootstrap.servers": settings.broker,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            **overrides,
        }
    )


def produce_feed(
    settings: Settings,
    events: Iterable[FeedEvent],
    *,
    rate: float = 0.0,
    on_sent: Callable[[FeedEvent], None] | None = None,
) -> dict[str, int]:
    """Send each event to its kind's topic keyed by user id; ``rate`` > 0 paces events per second."""
    topics = settings.topic_of_kind
    producer = make_producer(settings)
    counts: dict[str, int] = {}
    errors: list[str] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    start = time.monotonic()
    for i, fe in enumerate(events):
        topic = topics.get(fe.kind)
        if topic is None:
            continue
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        while True:
            try:
                producer.produce(
                    topic, key=fe.event["user_id"].encode(), value=orjson.dumps(fe.event), on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        counts[fe.kind] = counts.get(fe.kind, 0) + 1
        if on_sent:
            on_sent(fe)
    if producer.flush(60) > 0 or errors:
        raise RuntimeError(f"{len(errors)} events were not delivered: {errors[:3]}")
    return counts


def read_topic(
    settings: Settings, topic: str, *, from_beginning: bool = True, idle_timeout: float | None = 5.0, follow: bool = False
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) pairs of ``topic``; stops after ``idle_timeout`` seconds without records unless following."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.broker,
            "group.id": f"stream-cli-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "isolation.level": "read_committed",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign(
            [TopicPartition(topic, p, -2 if from_beginning else -1) for p in meta.partitions]
        )
        last = time.monotonic()
        while True:
            msg = consumer.poll(0.5)
            if msg is None:
                if not follow and idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(msg.error()))
            last = time.monotonic()
            yield msg.key(), msg.value()
    finally:
        consumer.close()
