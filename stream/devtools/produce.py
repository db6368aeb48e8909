"""Send a feed of events to the input topics, keyed by user id (the CLI producer, demo and tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import orjson
from confluent_kafka import KafkaError, Producer

from stream.config import Settings
from stream.devtools.feed import FeedEvent
from stream.devtools.progress import progress
from stream.kafka.clients import make_producer


def produce_feed(
    settings: Settings,
    events: Iterable[FeedEvent],
    *,
    rate: float = 0.0,
    on_sent: Callable[[FeedEvent], None] | None = None,
    total: int | None = None,
    show_progress: bool = False,
    producer: Producer | None = None,
) -> dict[str, int]:
    """Send each event to its kind's topic keyed by user id; ``rate`` > 0 paces events per second.

    Returns the events sent per kind; every one of them was acknowledged by the broker (the
    delivery callback), otherwise this raises with how many were. ``show_progress`` draws a
    bar (``total`` events expected) with the produced and acknowledged counts. A ``producer`` passed in
    is used (and flushed, not closed): a long-lived one has already done its idempotence handshake, which
    a new one does before sending anything (a timed feed must not measure that).
    """
    topics = settings.topic_of_kind
    producer = make_producer(settings) if producer is None else producer
    counts: dict[str, int] = {}
    errors: list[str] = []
    acked = 0
    bar = progress(total, "produce", unit="ev") if show_progress else None

    def delivered(err: KafkaError | None, _msg: object) -> None:
        nonlocal acked
        if err is not None:
            errors.append(str(err))
        else:
            acked += 1

    start = time.monotonic()
    try:
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
            if bar is not None:
                bar.update(1)
                if i % 100 == 0:
                    bar.set_postfix(acked=acked, refresh=False)
            if on_sent:
                on_sent(fe)
        left = producer.flush(60)
        if bar is not None:
            bar.set_postfix(acked=acked)
    finally:
        if bar is not None:
            bar.close()
    sent = sum(counts.values())
    if left > 0 or errors:
        raise RuntimeError(f"only {acked} of {sent} events were acknowledged by the broker: {errors[:3]}")
    return counts
