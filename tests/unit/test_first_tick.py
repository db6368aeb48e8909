"""Before the first churn tick, updates within its reach are not held back (they used to wait for max_wait)."""

from __future__ import annotations

from typing import Any

from stream.core.watermark import Outbox, Watermark

HOUR, DAY = 3_600_000, 86_400_000
NOON, MIDNIGHT = 100 * DAY + 12 * HOUR, 101 * DAY


class Stage1:
    """What stage 1 does per record (read, event, advance, tick, release) on two partitions of orders."""

    def __init__(self) -> None:
        self.clock = Watermark(lateness_ms=HOUR, tick_every_ms=DAY)
        self.box = Outbox(lateness_ms=HOUR, tick_every_ms=DAY, max_wait=30.0)
        self.offset = 0

    def record(self, partition: int, ts: int) -> tuple[list[int], list[int], list[int]]:
        source, self.offset = f"orders/{partition}", self.offset + 1
        self.clock.read(source, self.offset, now=0.0)
        self.clock.event(source, ts)
        self.clock.advance({"orders/0": None, "orders/1": None}, now=0.0)
        ticks = self.clock.ticks()
        update: dict[str, Any] = {"kind": "order", "user_id": "u", "source": source, "offset": self.offset, "ts": ts}
        out, before = self.box.release([update], ticks, self.clock.last_tick, now=0.0)
        return ticks, [u["offset"] for u in out], before


def test_a_fresh_worker_publishes_at_once_and_the_first_tick_still_comes_before_updates_beyond_its_reach() -> None:
    stage = Stage1()
    assert stage.record(0, NOON) == ([], [], [])  # partition 1 unheard of: the watermark cannot move yet
    assert stage.record(1, NOON)[:2] == ([], [1, 2]), "live events at noon wait for no midnight"
    assert stage.record(0, MIDNIGHT + 30 * 60_000)[:2] == ([], [3]), "00:30 is within the midnight check's reach"
    assert stage.record(0, MIDNIGHT + 90 * 60_000)[:2] == ([], []), "01:30 must wait for the midnight check"
    ticks, out, before = stage.record(1, MIDNIGHT + 2 * HOUR)  # partition 1 passes 01:00: the watermark passes midnight
    assert (ticks, out, before) == ([MIDNIGHT], [4, 5], [0])
