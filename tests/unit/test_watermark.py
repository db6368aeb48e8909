"""The event-time watermark on its own: minimum over partitions, lateness, idleness, held events, ticks."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import given, settings
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


def test_after_a_restart_a_silent_partition_stops_holding_event_time_once_told_where_reading_started() -> None:
    before = Watermark(idle_after=30.0)
    for p, ts in ((0, 20 * DAY), (1, 4 * DAY)):
        before.read(f"t/{p}", 0, now=0.0)
        before.event(f"t/{p}", ts)
    before.advance({"t/0": 1, "t/1": 1}, now=31.0)
    again = Watermark(idle_after=30.0)  # restarted: both records were read, checkpointed and committed before
    again.load_state(before.state())
    again.owned(["t/0", "t/1"], now=100.0)
    ends = {"t/0": 1, "t/1": 1}
    assert again.stalled(ends, now=110.0) == [], "not silent long enough to ask"
    assert again.stalled(ends, now=131.0) == ["t/0", "t/1"]
    again.advance(ends, now=131.0)
    assert again.value == 20 * DAY, "restored, not moved by the silent partitions"
    again.event("t/1", 25 * DAY)  # a new record on t/1 (offset 1): t/0 alone is silent
    again.read("t/1", 1, now=140.0)
    assert again.stalled({"t/0": 1, "t/1": 2}, now=141.0) == ["t/0"]
    again.resume_from({"t/0": 1})
    assert again.stalled({"t/0": 1, "t/1": 2}, now=141.0) == []
    assert again.advance({"t/0": 1, "t/1": 2}, now=175.0) == 25 * DAY, "t/0 read to its end and silent: idle"
    again.resume_from({"t/1": 0})
    assert again.partition_next["t/1"] == 2, "an older committed offset never moves reading back"


def test_a_partition_that_comes_back_from_another_worker_must_be_silent_again_before_it_is_idle() -> None:
    w = Watermark(idle_after=30.0)
    w.owned(["t/0", "t/1"], now=0.0)
    w.read("t/1", 0, now=0.0)
    w.event("t/1", DAY)
    w.owned(["t/0"], now=10.0)  # t/1 moved to another worker, which read it on while its producer wrote
    w.owned(["t/0", "t/1"], now=500.0)  # ... and it came back
    assert w.stalled({"t/0": 0, "t/1": 40}, now=501.0) == [], "its idleness clock starts again on return"
    assert w.stalled({"t/0": 0, "t/1": 40}, now=531.0) == ["t/1"]


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


class ReferenceOutbox:
    """The outbox rule written out directly, re-sorting everything waiting on every call."""

    def __init__(self, *, lateness_ms: int, tick_every_ms: int, max_wait: float, max_waiting: int) -> None:
        self.lateness_ms, self.tick_every_ms, self.max_wait, self.max_waiting = lateness_ms, tick_every_ms, max_wait, max_waiting
        self.waiting: list[dict] = []
        self.since: dict[tuple[str, int], float] = {}

    def release(self, updates: list[dict], ticks: list[int], last_tick: int | None, now: float) -> tuple[list[dict], list[int]]:
        for u in updates:
            self.since.setdefault((u["source"], u["offset"]), now)
        pending = [*self.waiting, *updates]
        due: dict[int, int] = {}  # an update goes at the newest event time among itself and its lane's earlier ones
        newest: dict[tuple[str, str], int] = {}
        for u in sorted(pending, key=lambda u: (u["source"], u["offset"])):
            lane = (u["source"], u["user_id"])
            newest[lane] = max(newest.get(lane, u["ts"]), u["ts"])
            due[id(u)] = newest[lane]
        pending.sort(key=lambda u: (due[id(u)], u["source"], u["offset"]))
        out: list[dict] = []
        before: list[int] = []
        reaches = [b + self.lateness_ms for b in ticks]
        if last_tick is not None:
            reaches.append((last_tick // self.tick_every_ms + 1) * self.tick_every_ms + self.lateness_ms)
        for n, reach in enumerate(reaches):
            while pending and due[id(pending[0])] <= reach:
                out.append(pending.pop(0))
            if n < len(ticks):
                before.append(len(out))
        overdue = [u for u in pending if now - self.since[(u["source"], u["offset"])] >= self.max_wait]
        rest = [u for u in pending if now - self.since[(u["source"], u["offset"])] < self.max_wait]
        overflow = max(0, len(rest) - self.max_waiting)
        out += sorted([*overdue, *rest[:overflow]], key=lambda u: (due[id(u)], u["source"], u["offset"]))
        self.waiting = rest[overflow:]
        self.since = {p: t for p, t in self.since.items() if p in {(u["source"], u["offset"]) for u in self.waiting}}
        return out, before


_batch = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 40), st.integers(0, 2), st.integers(0, 600)), max_size=8)
_step = st.tuples(_batch, st.integers(0, 3), st.floats(0, 20))


@settings(max_examples=400, deadline=None)
@given(st.lists(_step, max_size=25), st.sampled_from([0, 30]), st.integers(1, 6), st.booleans())
def test_outbox_releases_what_the_rule_written_out_releases(
    steps: list[tuple[list[tuple[int, int, int, int]], int, float]], lateness: int, max_waiting: int, ticked: bool
) -> None:
    """Same updates in the same order, same counts before each tick, same positions left waiting.

    Offsets come in any order and a position seen before comes again as a copy (redelivery)."""
    outbox = Outbox(lateness_ms=lateness, tick_every_ms=100, max_wait=30.0)
    reference = ReferenceOutbox(lateness_ms=lateness, tick_every_ms=100, max_wait=30.0, max_waiting=max_waiting)
    seen: dict[tuple[str, int], dict] = {}
    last_tick, now = (0 if ticked else None), 0.0
    with patch("stream.core.watermark.MAX_WAITING", max_waiting):
        for batch, ticking, dt in steps:
            updates = []
            for partition, offset, user, ts in batch:
                source = f"orders/{partition}"
                u = seen.setdefault((source, offset), _update(offset, ts, user=f"u{user}", source=source))
                updates.append(dict(u))
            ticks = [] if last_tick is None else [last_tick + 100 * (i + 1) for i in range(ticking)]
            last_tick = ticks[-1] if ticks else (last_tick if last_tick is not None or not ticking else 0)
            now += dt
            expected = reference.release(updates, ticks, last_tick, now)
            assert outbox.release(updates, ticks, last_tick, now) == expected
            assert outbox.positions() == {(u["source"], u["offset"]) for u in reference.waiting}
            assert len(outbox) == len(reference.waiting)


def test_a_backlog_never_counts_as_stuck_a_partition_with_an_unknown_end_does() -> None:
    """Updates leave the outbox early only while the watermark is stuck; a backlog is read, however slowly."""
    clock = Watermark(idle_after=1.0)
    clock.read("orders/0", 0, now=0.0)
    clock.event("orders/0", 5_000)
    backlog = {"orders/0": 1, "reviews/0": 50}  # reviews/0 lags, with records still to read
    for i, now in enumerate((0.0, 10.0, 100.0)):
        clock.read("reviews/0", i, now=now)  # one record per slow batch, all from the same moment
        clock.event("reviews/0", 1_000)
        clock.advance(backlog, now)
        assert clock.value == 1_000 and not clock.stuck(now)
    unknown = {"orders/0": 1, "reviews/0": 50, "searches/0": None}  # never fetched: holds the value, nothing to read
    clock.advance(unknown, 100.0)
    assert not clock.stuck(100.5) and clock.stuck(101.0)

