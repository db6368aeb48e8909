"""Send a feed of events to the input topics, keyed by user id (the CLI producer, demo and tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import orjson
from confluent_kafka import KafkaError

from stream.config import Settings
from stream.devtools.feed import FeedEvent
from stream.kafka.clients import make_producer


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
