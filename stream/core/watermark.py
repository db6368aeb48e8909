"""The event-time watermark of stage 1: per-partition maxima, idleness, and the tick schedule.

Event time every owned, non-idle partition has reached, minus the allowed lateness, and
never past an event still held back (warm-up). Taking the minimum over partitions (not the
newest event seen) keeps a lagging topic or partition from being judged silent. A
partition stops holding the watermark back (Flink's idleness) only when it is idle: read to
its end offset and without records for ``idle_after`` seconds. A partition that is merely
waiting behind a busy encoder still has records to deliver, so it is never idle.

Plain state, no clock of its own: callers pass a monotonic reading ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class Watermark:
    """Per-partition event-time maxima and read positions; ``value`` only moves forward."""

    def __init__(self, *, lateness_ms: int = 0, idle_after: float = 30.0, tick_every_ms: int = 86_400_000) -> None:
        self.lateness_ms = lateness_ms
        self.idle_after = idle_after
        self.tick_every_ms = tick_every_ms
        self.partition_max: dict[str, int] = {}  # newest event time per "topic/partition"
        self.partition_seen: dict[str, float] = {}  # monotonic time of the last record (or of first sight)
        self.partition_next: dict[str, int] = {}  # next offset to read
        self.value = 0
        self.last_tick: int | None = None

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: read positions and idleness are rebuilt by the next run."""
        return {"partition_max": dict(self.partition_max), "watermark": self.value, "last_tick": self.last_tick}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.partition_max = dict(state["partition_max"])
        self.value = state["watermark"]
        self.last_tick = state["last_tick"]

    def owned(self, sources: Iterable[str], now: float) -> None:
        """Partitions assigned to this worker; one never heard of starts its idleness clock now."""
        for source in sources:
            self.partition_seen.setdefault(source, now)

    def read(self, source: str, offset: int, now: float) -> None:
        """A record was consumed from ``source`` (whether or not it was valid)."""
        self.partition_seen[source] = now
        self.partition_next[source] = max(self.partition_next.get(source, 0), offset + 1)

    def event(self, source: str, ts_ms: int) -> None:
        """A valid event with event time ``ts_ms`` came from ``source``."""
        self.partition_max[source] = max(self.partition_max.get(source, 0), ts_ms)

    def advance(self, highwaters: Mapping[str, int | None], now: float, held_from_ms: int | None = None) -> int:
        """Move forward as far as every partition allows; ``held_from_ms`` is the oldest held event's time.

        ``highwaters`` maps the owned partitions to their end offsets (None while unknown).
        """
        sources = set(highwaters) | set(self.partition_max)

        def idle(source: str) -> bool:
            end = highwaters.get(source)
            caught_up = end is not None and self.partition_next.get(source, 0) >= end
            return caught_up and now - self.partition_seen.get(source, now) >= self.idle_after

        active = [self.partition_max.get(s) for s in sources if not idle(s)]
        if None in active or not self.partition_max:
            return self.value
        # Every partition idle: everything there is has been read, so event time is the newest seen.
        candidate = (min(a for a in active if a is not None) if active else max(self.partition_max.values()))
        candidate -= self.lateness_ms
        if held_from_ms is not None:
            candidate = min(candidate, held_from_ms - 1)
        self.value = max(self.value, candidate)
        return self.value

    def ticks(self) -> list[int]:
        """A tick each time the watermark enters a new check interval of event time."""
        if not self.value:
            return []
        bucket = self.value // self.tick_every_ms
        if self.last_tick is not None and bucket <= self.last_tick // self.tick_every_ms:
            return []
        self.last_tick = self.value
        return [self.value]
