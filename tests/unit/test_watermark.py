"""The event-time watermark on its own: minimum over partitions, lateness, idleness, held events, ticks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.core.watermark import Outbox, Watermark

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


def _update(offset: int, ts: int, user: str = "u1", source: str = "orders/0") -> dict:
    return {"kind": "order", "user_id": user, "source": source, "offset": offset, "ts": ts}


def test_outbox_keeps_each_users_partition_in_offset_order_when_event_times_are_out_of_order() -> None:
    """Stage 2 skips offsets at or below the last applied one: overtaking would lose the earlier update."""
    outbox = Outbox(lateness_ms=0, tick_every_ms=100)
    sent, _ = outbox.release([_update(0, 50), _update(1, 10), _update(2, 30), _update(0, 5, user="u2", source="orders/1")],
                             ticks=[], last_tick=0, now=0.0)
    mine = [u["offset"] for u in sent if u["user_id"] == "u1"]
    assert mine == [0, 1, 2]
    assert [u["user_id"] for u in sent][0] == "u2", "other users still go in event-time order"


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1_000)), max_size=60), st.integers(0, 1_000))
def test_outbox_never_reorders_a_users_partition(events: list[tuple[int, int]], boundary: int) -> None:
    outbox = Outbox(lateness_ms=0, tick_every_ms=1_000)
    updates = [_update(offset, ts, user=f"u{user}") for offset, (user, ts) in enumerate(events)]
    first, _ = outbox.release(updates[: len(updates) // 2], ticks=[], last_tick=None, now=0.0)
    second, _ = outbox.release(updates[len(updates) // 2 :], ticks=[boundary], last_tick=boundary, now=1.0)
    third, _ = outbox.release([], ticks=[], last_tick=None, now=1e9)  # everything overdue goes out
    sent = [*first, *second, *third]
    assert sorted(u["offset"] for u in sent) == list(range(len(updates)))
    for user in {u["user_id"] for u in updates}:
        offsets = [u["offset"] for u in sent if u["user_id"] == user]
        assert offsets == sorted(offsets)
