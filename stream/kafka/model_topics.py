"""The single-partition topics of the shared interest model, read with plain confluent-kafka clients.

* ``{app}-model`` (compacted, key ``model``): each version the owner publishes. Every worker
  follows it in a background thread (:class:`ModelFollower`): Faust would hand a partition to
  one worker only, and every worker needs every version.
* ``{app}-model-state`` (compacted, key ``state``): the owner's whole state (keyword counts with
  their writers, snippet candidates), every ``STREAM_MODEL_STATE_INTERVAL`` seconds: a new owner
  continues from it and the learning records after it (:func:`latest_state`, :func:`learning_since`).
* ``{app}-model-learning``: what workers learned, in the order the owner merges it. A worker
  that takes over an input partition reads the records after the latest version
  (:func:`sent_since`) to know which of that partition's texts another worker already sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from stream.config import Settings
from stream.core.shared_model import (
    ModelFormatError,
    ModelView,
    covered_positions,
    decode_snapshot,
)
from stream.kafka.security import confluent_config
from stream.kafka.topics import MAX_MODEL_BYTES

log = logging.getLogger(__name__)



def _consumer(settings: Settings, **config: Any) -> Consumer:
    return Consumer({
        **confluent_config(settings), "group.id": f"stream-model-{time.monotonic_ns()}", "enable.auto.commit": False,
        "fetch.max.bytes": MAX_MODEL_BYTES, "max.partition.fetch.bytes": MAX_MODEL_BYTES,
        "receive.message.max.bytes": MAX_MODEL_BYTES + 1024 * 1024, **config,
    })


def _records(settings: Settings, topic: str, start: int | None, timeout: float,
             stop: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset, value) of partition 0 from ``start`` (None: only the last record) up to ``stop``
    (exclusive; at most the end seen now), read as it arrives; ``timeout``: most seconds without progress."""
    consumer = _consumer(settings)
    try:
        tp = TopicPartition(topic, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        end = high if stop is None else min(stop, high)
        first = max(low, high - 1) if start is None else max(low, start)
        if first >= end:
            return
        consumer.assign([TopicPartition(topic, 0, first)])
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} from {first}: no progress towards offset {end - 1} in {timeout}s")
            for msg in consumer.consume(500, timeout=0.2):
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                deadline = time.monotonic() + timeout
                if msg.offset() >= end:
                    return
                if msg.value():
                    yield msg.offset(), msg.value()
                if msg.offset() >= end - 1:
                    return
    finally:
        consumer.close()


def latest_snapshot(settings: Settings, topic: str, timeout: float = 60.0) -> dict[str, Any] | None:
    """The newest record of a model topic (``topic_model``: the newest version; ``topic_model_state``:
    the owner's newest whole state), decoded; None when there is none or it cannot be read."""
    for _, value in _records(settings, topic, None, timeout):
        try:
            return decode_snapshot(value)
        except ModelFormatError as exc:
            log.error("the last record of %s is not a model snapshot (%s): ignored", topic, exc)
    return None


def latest_state(settings: Settings, timeout: float = 60.0) -> dict[str, Any] | None:
    """The owner state to continue from: the state topic's newest, else a whole state on the model
    topic (versions before the state topic carried one in every record)."""
    state = latest_snapshot(settings, settings.topic_model_state, timeout)
    if state is None:
        legacy = latest_snapshot(settings, settings.topic_model, timeout)
        state = legacy if legacy is not None and "terms" in legacy else None
    return state


def learning_since(settings: Settings, position: int, stop: int | None = None,
                   timeout: float = 60.0) -> Iterator[tuple[int, dict[str, Any]]]:
    """The learning topic's records after ``position`` and before ``stop`` (default: its end now), as
    (offset, message), read as they arrive (a record that is not a JSON object reads as ``{}``)."""
    for offset, value in _records(settings, settings.topic_learning, position + 1, timeout, stop):
        try:
            message = orjson.loads(value)
        except orjson.JSONDecodeError:
            message = None
        yield offset, message if isinstance(message, dict) else {}


def first_offset(settings: Settings, topic: str) -> int:
    """The oldest offset still on partition 0 of ``topic`` (retention deletes from the front)."""
    consumer = _consumer(settings)
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(low)
    finally:
        consumer.close()


def sent_since(settings: Settings, position: int, timeout: float = 60.0) -> dict[str, int]:
    """Per input partition, the last offset whose learning reached the learning topic after ``position``."""
    out: dict[str, int] = {}
    for _, message in learning_since(settings, position, timeout=timeout):
        for source, last in covered_positions(message).items():
            out[source] = max(out.get(source, -1), last)
    return out


class ModelFollower:
    """Keeps the newest model version of the application in memory, from a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.latest: ModelView | None = None
        self.position = -1  # learning-topic position the latest version covers
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        topic = self.settings.topic_model
        while not self._stop.is_set():
            try:
                self._follow(topic)
            except Exception:
                log.exception("following %s failed; retrying in 2 s", topic)
                self._stop.wait(2.0)

    def _follow(self, topic: str) -> None:
        consumer = _consumer(self.settings)
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            consumer.assign([TopicPartition(topic, 0, max(low, high - 1))])
            if high <= low:
                self.caught_up.set()
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    raise RuntimeError(str(msg.error()))
                if msg.value():
                    self._take(msg.value(), msg.offset())
                if msg.offset() >= high - 1:
                    self.caught_up.set()
        finally:
            consumer.close()

    def _take(self, value: bytes, offset: int) -> None:
        try:
            snapshot = decode_snapshot(value)
            view = ModelView.from_snapshot(snapshot)
        except ModelFormatError as exc:
            log.error("model record %d of %s skipped: %s", offset, self.settings.topic_model, exc)
            return
        if view.newer_than(self.latest):
            self.latest = view
            self.position = int(snapshot.get("position", -1))
