"""The event-time watermark on its own: minimum over partitions, lateness, idleness, held events, ticks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.core.watermark import Watermark

DAY = 86_400_000


def test_the_slowest_partition_holds_the_watermark() -> None:
    w = Watermark(lateness_ms=1000)
    w.owned(["t/0", "t/1"], now=0.0)
    w.read("t/0", 0, now=0.0)
    w.event("t/0", 10 * DAY)
    assert w.advance({"t/0": 1, "t/1": None}, now=0.0) == 0, "t/1 has not spoken yet"
    w.read("t/1", 0, now=1.0)
    w.event("t/1", 4 * DAY)
    assert w.advance({"t/0": 1, "t/1": 1}, now=1.0) == 4 * DAY - 1000


def test_a_partition_is_idle_only_when_read_to_its_end_and_silent() -> None:
    w = Watermark(idle_after=30.0)
    for p, ts in ((0, 20 * DAY), (1, 4 * DAY)):
        w.read(f"t/{p}", 0, now=0.0)
        w.event(f"t/{p}", ts)
    assert w.advance({"t/0": 1, "t/1": 2}, now=100.0) == 4 * DAY, "t/1 still has a record to deliver"
    assert w.advance({"t/0": 1, "t/1": 1}, now=10.0) == 4 * DAY, "read to its end but not silent long enough"
    assert w.advance({"t/0": 1, "t/1": 1}, now=31.0) == 20 * DAY, "all idle: event time is the newest seen"


def test_held_events_keep_the_watermark_below_them() -> None:
    w = Watermark()
    w.read("t/0", 0, now=0.0)
    w.event("t/0", 10 * DAY)
    assert w.advance({"t/0": 1}, now=0.0, held_from_ms=3 * DAY) == 3 * DAY - 1


def test_ticks_once_per_interval_of_event_time() -> None:
    w = Watermark(tick_every_ms=DAY)
    assert w.ticks() == []
    w.read("t/0", 0, now=0.0)
    for ts, expected in ((DAY + 5, []), (DAY + 100, []), (2 * DAY, [2 * DAY]), (5 * DAY + 7, [3 * DAY, 4 * DAY, 5 * DAY])):
        w.event("t/0", ts)
        w.advance({"t/0": 1}, now=0.0)
        assert w.ticks() == expected


def test_state_round_trip_resumes_where_it_stopped() -> None:
    w = Watermark()
    w.read("t/0", 0, now=0.0)
    w.event("t/0", 3 * DAY)
    w.advance({"t/0": 1}, now=0.0)
    w.ticks()
    again = Watermark()
    again.load_state(w.state())
    assert (again.value, again.last_tick, again.partition_max, again.first_ms) == (w.value, w.last_tick, w.partition_max, w.first_ms)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 400 * DAY), st.floats(0, 100)), max_size=40))
def test_the_watermark_never_goes_back(steps: list[tuple[int, int, float]]) -> None:
    w = Watermark(lateness_ms=5, idle_after=10.0)
    last, now = 0, 0.0
    for partition, ts, dt in steps:
        now += dt
        w.read(f"t/{partition}", 0, now)
        w.event(f"t/{partition}", ts)
        value = w.advance({f"t/{p}": 1 for p in range(4)}, now)
        assert value >= last
        last = value
