"""Follows the profiles topic and remembers when each user's event count first reached each value."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from stream.config import Settings
from stream.devtools.progress import progress as bar
from stream.kafka.clients import topic_batches


def events_total(view: Mapping[str, Any]) -> int:
    """Events counted in a public profile (profile schema v2 keeps the total under ``behaviour``)."""
    return int(view["behaviour"]["events_total"])


class ProfileWatcher:
    """The profiles topic from the beginning of every partition, followed in a thread for the whole run.

    Starting at "latest" would race with the first records (the end offset is resolved only at the
    first fetch), and a profile of a user's n-th event carries ``events_total == n``, so the
    arrival time of the n-th event's update is the first record whose total reaches n (a churn
    re-assessment may publish the same total again; only the first arrival counts).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._arrivals: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._order: list[str] = []  # user of every profile message, in arrival order (for incremental waits)
        self.sizes: list[int] = []
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="profile-watcher", daemon=True)

    def __enter__(self) -> ProfileWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        # arrival times are the measurement: do not let the consumer batch them
        batches = topic_batches(self.settings, self.settings.topic_profiles, follow=True, stop=self._stop.is_set,
                                **{"fetch.wait.max.ms": 20})
        try:
            for batch in batches:
                now = time.monotonic()
                with self._cond:
                    for _, value in batch:
                        if value is None:
                            continue
                        profile = orjson.loads(value)
                        self._arrivals[profile["user_id"]].append((events_total(profile), now))
                        self._order.append(profile["user_id"])
                        self.sizes.append(len(value))
                    if batch:
                        self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    @property
    def users(self) -> int:
        with self._cond:
            return len(self._arrivals)

    @property
    def messages(self) -> int:
        with self._cond:
            return len(self.sizes)

    def total(self, user: str) -> int:
        with self._cond:
            arrivals = self._arrivals.get(user)
            return max(t for t, _ in arrivals) if arrivals else 0

    def appeared(self, user: str, count: int) -> float:
        """Monotonic time of the first profile of ``user`` that includes its ``count``-th event."""
        with self._cond:
            for total, t in self._arrivals.get(user, ()):
                if total >= count:
                    return t
        raise LookupError(f"no profile of {user} counts {count} events yet")

    def wait_for(
        self,
        expected: Mapping[str, int],
        check: Callable[[], None],
        stall_timeout: float = 90.0,
        report: Callable[[int, int], None] | None = None,
    ) -> None:
        """Block until every user's total reaches ``expected``; fail when nothing moves for ``stall_timeout``.

        Progress is counted incrementally (only users with new profiles are looked at), so waiting
        for 100k users costs no more than following them. On a terminal a bar shows events in profiles,
        their rate and the ETA; ``report(done, goal)`` is called every 15 s (for logs).
        """
        goal = sum(expected.values())
        reached: dict[str, int] = {}
        progress, cursor = 0, 0
        last_change = last_report = time.monotonic()
        with bar(goal, "in profiles", unit="ev") as shown:
            while True:
                with self._cond:
                    if self._error is not None:
                        raise RuntimeError(f"profiles consumer failed: {self._error}") from self._error
                    new, cursor = self._order[cursor:], len(self._order)
                    for user in new:
                        if user in expected:
                            best = min(self._arrivals[user][-1][0], expected[user])
                            if best > reached.get(user, 0):
                                progress += best - reached.get(user, 0)
                                reached[user] = best
                    shown.update(progress - shown.n)
                    if progress >= goal:
                        return
                    if new:
                        last_change = time.monotonic()
                    elif time.monotonic() - last_change > stall_timeout:
                        raise TimeoutError(f"only {progress}/{goal} events reached profiles; none for {stall_timeout:.0f}s")
                    self._cond.wait(1.0)
                check()
                if report is not None and time.monotonic() - last_report > 15:
                    report(progress, goal)
                    last_report = time.monotonic()
