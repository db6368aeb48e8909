"""Two settings of the worker consumer that Faust hard-codes: the fetch long-poll and the isolation level.

faust-streaming builds its worker consumer (``AIOKafkaConsumerThread._create_worker_consumer``)
with ``fetch_max_wait_ms=1500`` and, unless the app runs exactly-once, ``read_uncommitted``, and
offers no setting for either.

* Long-poll: aiokafka sends one fetch per broker at a time, and a partition still being drained
  is left out of it: its next records then wait for that fetch, up to the full long-poll when the
  other partitions are idle. A short wait caps that stall at the cost of more (empty) fetch requests.
* Isolation: input topics may come from transactional producers (Kafka Streams, Flink, any
  exactly-once producer). Read uncommitted, a record of an aborted transaction would count as an
  event, and its committed retry once more; read committed, it is never seen, and a record of an
  open transaction waits for the commit.

The patch wraps Faust's method once and applies the values per app; an app never passed to
:func:`configure_worker_consumer` keeps Faust's own.
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
        # aiokafka hands both to its Fetcher in start()
        if not hasattr(consumer, "_fetch_max_wait_ms") or not hasattr(consumer, "_isolation_level"):
            raise RuntimeError("this aiokafka's AIOKafkaConsumer lacks _fetch_max_wait_ms or _isolation_level: "
                               "update stream.worker.faust_consumer")
        consumer._fetch_max_wait_ms = wait_ms
        consumer._isolation_level = "read_committed"
    return consumer


def configure_worker_consumer(app: faust.App, fetch_max_wait: float) -> None:
    """Let ``app``'s worker consumer long-poll the broker for at most ``fetch_max_wait`` seconds and read
    committed records only (call before the app starts)."""
    _WAIT_MS[app] = max(0, round(fetch_max_wait * 1000))
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
