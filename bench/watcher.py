"""Follows the profiles topic and remembers when each user's event count first reached each value."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from stream.config import Settings


def events_total(view: Mapping[str, Any]) -> int:
    """Events counted in a public profile (profile schema v2 keeps the total under ``behaviour``)."""
    return int(view["behaviour"]["events_total"])


class ProfileWatcher:
    """One consumer for the whole run, assigned from the beginning of every partition.

    Starting at "latest" would race with the first records (the end offset is resolved only at the
    first fetch), and a profile of a user's n-th event carries ``events_total == n``, so the
    arrival time of the n-th event's update is the first record whose total reaches n (a churn
    re-assessment may publish the same total again; only the first arrival counts).
    """

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_profiles
        self._consumer = Consumer({
            "bootstrap.servers": settings.broker,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,  # arrival times are the measurement: do not let the consumer batch them
        })
        self._arrivals: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.sizes: list[int] = []
        self._error: KafkaError | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="profile-watcher", daemon=True)

    def __enter__(self) -> ProfileWatcher:
        partitions = self._consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions
        self._consumer.assign([TopicPartition(self.topic, p, -2) for p in partitions])
        self._thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()

    def _follow(self) -> None:
        while not self._stop.is_set():
            messages = self._consumer.consume(500, timeout=0.1)
            now = time.monotonic()
            with self._cond:
                for m in messages:
                    if m.error():
                        self._error = m.error()
                    elif m.value() is not None:
                        profile = orjson.loads(m.value())
                        self._arrivals[profile["user_id"]].append((events_total(profile), now))
                        self.sizes.append(len(m.value()))
                if messages:
                    self._cond.notify_all()

    @property
    def users(self) -> int:
        with self._cond:
            return len(self._arrivals)

    def total(self, user: str) -> int:
        with self._cond:
            arrivals = self._arrivals.get(user)
            return arrivals[-1][0] if arrivals else 0

    def appeared(self, user: str, count: int) -> float:
        """Monotonic time of the first profile of ``user`` that includes its ``count``-th event."""
        with self._cond:
            for total, t in self._arrivals.get(user, ()):
                if total >= count:
                    return t
        raise LookupError(f"no profile of {user} counts {count} events yet")

    def wait_for(self, expected: Mapping[str, int], check: Callable[[], None], stall_timeout: float = 90.0) -> None:
        """Block until every user's total reaches ``expected``; fail when nothing moves for ``stall_timeout``."""
        goal = sum(expected.values())
        done, last_change = -1, time.monotonic()
        while True:
            with self._cond:
                if self._error is not None:
                    raise RuntimeError(f"profiles consumer failed: {self._error}")
                progress = sum(min(self._arrivals[u][-1][0], n) for u, n in expected.items() if self._arrivals.get(u))
                if progress >= goal:
                    return
                if progress != done:
                    done, last_change = progress, time.monotonic()
                elif time.monotonic() - last_change > stall_timeout:
                    raise TimeoutError(f"only {progress}/{goal} events reached profiles; none for {stall_timeout:.0f}s")
                self._cond.wait(1.0)
            check()
