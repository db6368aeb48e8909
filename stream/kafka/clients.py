"""confluent-kafka clients for tools and the worker's start-up reads: producer settings, one topic reader."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from stream.config import Settings
from stream.kafka.security import confluent_config


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """Idempotent producer; murmur2 partitioning like the Java and Faust clients, so keys co-partition."""
    return Producer(
        {
            **confluent_config(settings),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            **overrides,
        }
    )


def topic_batches(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = True,
    follow: bool = False,
    timeout: float = 60.0,
    stop: Callable[[], bool] | None = None,
    max_batch: int = 500,
    **config: Any,
) -> Iterator[list[tuple[bytes | None, bytes | None]]]:
    """The one reader of a topic: batches of (key, value), up to the end offsets seen at the start,
    or, when following, until ``stop()`` says so (then an empty batch comes whenever nothing arrived,
    so a follower can look at the clock). ``config`` adds consumer settings (e.g. ``fetch.wait.max.ms``)."""
    consumer = Consumer(
        {
            **confluent_config(settings),
            "group.id": f"stream-reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "isolation.level": "read_committed",
            **config,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"topic {topic}: {meta.error}")
        partitions = [TopicPartition(topic, p, -2 if from_beginning else -1) for p in meta.partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.assign(partitions)
        todo = {p for p, end in ends.items() if end > 0} if from_beginning and not follow else set()
        deadline = time.monotonic() + timeout
        while (follow or todo) and not (stop and stop()):
            if not follow and time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(todo)} not read to their end in {timeout}s")
            batch = []
            for msg in consumer.consume(max_batch, timeout=0.2):
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                if msg.offset() >= ends[msg.partition()] - 1:
                    todo.discard(msg.partition())
                batch.append((msg.key(), msg.value()))
            if batch or follow:
                yield batch
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, **options: Any) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) pairs of ``topic``, one by one; ``options`` as for :func:`topic_batches`."""
    for batch in topic_batches(settings, topic, **options):
        yield from batch


def topic_offsets(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """(low, high) offsets per partition of ``topic``."""
    consumer = Consumer({**confluent_config(settings), "group.id": f"stream-offsets-{time.monotonic_ns()}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"topic {topic}: {meta.error}")
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in meta.partitions}
    finally:
        consumer.close()


def committed_offsets(settings: Settings, group: str, topics: Iterable[str], timeout: float = 60.0) -> dict[str, int]:
    """Committed offset per "topic/partition" of a consumer group (absent when nothing is committed).

    Retries while the group coordinator is still loading (a freshly started broker says so).
    """
    consumer = Consumer({**confluent_config(settings), "group.id": group, "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in consumer.list_topics(t, timeout=10).topics[t].partitions
        ]
        while True:
            try:
                committed = consumer.committed(tps, timeout=10)
                return {f"{tp.topic}/{tp.partition}": tp.offset for tp in committed if tp.offset >= 0}
            except KafkaException as exc:
                if not exc.args[0].retriable() and exc.args[0].code() != KafkaError.NOT_COORDINATOR:
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def data_ends(settings: Settings, starts: Mapping[str, int], timeout: float = 5.0) -> dict[str, int]:
    """Per "topic/partition" read up to ``starts`` (the next offset), where reading ends when no committed
    record is left before the end: past transaction markers and aborted records, which a consumer never
    receives, so the partition's end offset is more than the next offset it will ever deliver. Partitions
    with a record still to come, or not answered within ``timeout``, are left out."""
    consumer = Consumer({
        **confluent_config(settings), "group.id": f"stream-probe-{time.monotonic_ns()}", "enable.auto.commit": False,
        "isolation.level": "read_committed", "enable.partition.eof": True,
        "auto.offset.reset": "earliest",  # out of range (retention): from the log start, as the worker reads
    })
    try:
        positions = {source.rpartition("/"): offset for source, offset in starts.items()}
        consumer.assign([TopicPartition(topic, int(partition), offset)
                         for (topic, _, partition), offset in positions.items()])
        pending, ends = set(starts), {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            source = f"{msg.topic()}/{msg.partition()}"
            error = msg.error()
            if source not in pending:
                if error is not None and msg.topic() is None:
                    raise KafkaException(error)
                continue
            pending.discard(source)  # a record, an error (left out), or the end with nothing readable before it
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                ends[source] = msg.offset()
        return ends
    finally:
        consumer.close()
