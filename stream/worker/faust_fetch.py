"""The worker consumer's fetch long-poll, which Faust hard-codes to 1.5 s.

faust-streaming builds its worker consumer with ``fetch_max_wait_ms=1500`` and no setting for
it (``AIOKafkaConsumerThread._create_worker_consumer``). aiokafka sends one fetch per broker at
a time, and a partition still being drained is left out of it: its next records then wait for
that fetch, up to the full long-poll when the other partitions are idle. A short wait caps that
stall at the cost of more (empty) fetch requests. The patch wraps Faust's method once and sets
the value per app; an app never passed to :func:`set_fetch_max_wait` keeps Faust's 1.5 s.
"""

from __future__ import annotations

import weakref
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_WAIT_MS: weakref.WeakKeyDictionary[faust.App, int] = weakref.WeakKeyDictionary()
_original = AIOKafkaConsumerThread._create_worker_consumer


def _create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    consumer = _original(self, transport)
    wait_ms = _WAIT_MS.get(self.app)
    if wait_ms is not None:
        if not hasattr(consumer, "_fetch_max_wait_ms"):  # aiokafka hands it to its Fetcher in start()
            raise RuntimeError("this aiokafka has no AIOKafkaConsumer._fetch_max_wait_ms: update stream.worker.faust_fetch")
        consumer._fetch_max_wait_ms = wait_ms
    return consumer


def set_fetch_max_wait(app: faust.App, seconds: float) -> None:
    """Let ``app``'s worker consumer long-poll the broker for at most ``seconds`` (set before the app starts)."""
    _WAIT_MS[app] = max(0, round(seconds * 1000))
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
