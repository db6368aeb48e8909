"""Event time that one record cannot break, and alerts that do not depend on read speed.

Ticks for every crossed check interval, in order; updates and ticks in event-time order for
stage 2 (:class:`~stream.core.watermark.Outbox`); only texts wait for the warm start; decayed
weights that never underflow to a division by zero; per-user state within its caps; foreign
keys on the dead-letter topic. The central property: the same records read live (one at a
time, in event-time order) or as a backlog (partitions read in any interleaving, in batches
of any size) give the same churn alerts and the same profiles.
"""

from __future__ import annotations

import functools
import json
import random
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.clustering import OnlineClusterer
from stream.core.events import Limits
from stream.core.intake import parse_dead_letter_key
from stream.core.messages import make_tick, make_update
from stream.core.profile import (
    DAY_MS,
    MAX_RECENT_ORDERS,
    MAX_USER_CATEGORIES,
    MAX_USER_TERMS,
    Rules,
    apply_update,
    new_profile,
    public_view,
)
from stream.core.stage2 import ProfileStage
from stream.core.watermark import MAX_TICKS, Outbox, Watermark
from stream.worker.pipeline import BatchProcessor, Record

from .test_pipeline import FakeEncoder

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
WALL = T0 + 400 * DAY_MS
LATENESS = 6 * 3_600_000
LIMITS = Limits(max_text_chars=500, reject_text_chars=1000, max_future_ms=300_000)
TOPICS = {"reviews": "review", "orders": "order", "user-attributes": "user_attributes"}
PARTITIONS = 2


# --- the tick schedule ---------------------------------------------------------------------


def test_a_watermark_jump_ticks_every_crossed_interval_in_order() -> None:
    w = Watermark(tick_every_ms=DAY_MS)
    w.read("t/0", 0, now=0.0)
    w.event("t/0", T0 + 3 * DAY_MS)
    w.advance({"t/0": 1}, now=0.0)
    assert w.ticks() == [T0 + 3 * DAY_MS]
    w.event("t/0", T0 + 9 * DAY_MS + 5)
    w.advance({"t/0": 1}, now=0.0)
    assert w.ticks() == [T0 + d * DAY_MS for d in range(4, 10)], "a backlog crossing six days ticks six times"


def test_the_first_ticks_start_at_the_oldest_event_and_are_bounded() -> None:
    w = Watermark(tick_every_ms=DAY_MS, lateness_ms=LATENESS)
    w.read("t/0", 0, now=0.0)
    w.event("t/0", T0 + 20 * DAY_MS)
    w.event("t/0", T0 + 2 * DAY_MS + 7)  # read in the same batch, older
    w.advance({"t/0": 1}, now=0.0)
    assert w.ticks() == [T0 + d * DAY_MS for d in range(2, 20)]
    w.event("t/0", T0 + 2000 * DAY_MS)  # an outage of years: the newest MAX_TICKS boundaries only
    w.advance({"t/0": 1}, now=0.0)
    ticks = w.ticks()
    assert len(ticks) == MAX_TICKS and ticks[-1] == (T0 + 2000 * DAY_MS - LATENESS) // DAY_MS * DAY_MS


def test_held_texts_keep_the_watermark_more_than_the_lateness_before_them() -> None:
    w = Watermark(lateness_ms=LATENESS)
    w.read("t/0", 0, now=0.0)
    w.event("t/0", T0 + 10 * DAY_MS)
    assert w.advance({"t/0": 1}, now=0.0, held_from_ms=T0 + 3 * DAY_MS) == T0 + 3 * DAY_MS - LATENESS - 1


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.integers(0, 60 * DAY_MS), min_size=1, max_size=40), cuts=st.sets(st.integers(0, 40)))
def test_the_ticks_do_not_depend_on_how_event_time_is_batched(times: list[int], cuts: set[int]) -> None:
    """One batch or many: the same boundaries, each once, in order."""

    def run(batches: list[list[int]]) -> list[int]:
        w, out = Watermark(tick_every_ms=DAY_MS, lateness_ms=LATENESS), []
        w.read("t/0", 0, now=0.0)
        for batch in batches:
            for ts in batch:
                w.event("t/0", T0 + ts)
            w.advance({"t/0": 1}, now=0.0)
            out += w.ticks()
        return out

    times = sorted(times)
    split = [times[a:b] for a, b in zip([0, *sorted(c for c in cuts if c < len(times))], [*sorted(c for c in cuts if c < len(times)), len(times)])]
    together = run([times])
    assert run(split) == together == sorted(set(together))


# --- the outbox: updates and ticks in event-time order -------------------------------------


def upd(ts: int, offset: int = 0) -> dict[str, Any]:
    return dict(make_update(kind="order", user_id="u", event_id=str(offset), ts_ms=ts, source="orders/0", offset=offset,
                            watermark=0, data={"cents": 1, "category": None, "items": 1}))


def test_updates_later_than_a_tick_plus_lateness_wait_for_it() -> None:
    box = Outbox(lateness_ms=LATENESS, tick_every_ms=DAY_MS)
    early, late = upd(T0 + DAY_MS + LATENESS, 1), upd(T0 + DAY_MS + LATENESS + 1, 2)
    out, before = box.release([late, early], [T0], last_tick=T0)
    assert out == [early] and before == [0] and box.positions() == {("orders/0", 2)}
    out, before = box.release([], [T0 + DAY_MS], last_tick=T0 + DAY_MS)
    assert out == [late] and before == [0], "the tick for day 1 goes first, then the update after its reach"


def test_before_the_first_tick_every_update_waits() -> None:
    box = Outbox(lateness_ms=0, tick_every_ms=DAY_MS)
    assert box.release([upd(T0)], [], last_tick=None) == ([], [])
    assert box.release([], [T0 - DAY_MS, T0], last_tick=T0) == ([upd(T0)], [0, 1])


# --- stage 1: only texts wait for the warm start -------------------------------------------


def record(topic: str, offset: int, obj: dict[str, Any], partition: int = 0) -> Record:
    return Record(topic, partition, offset, obj["user_id"].encode(), json.dumps(obj, ensure_ascii=False).encode())


def order_obj(n: int, user: str, ts: int) -> dict[str, Any]:
    return {"event_id": f"o{n}", "user_id": user, "ts": ts, "order_id": f"o{n}", "amount": 12.5, "currency": "CNY", "items": 1}


def review_obj(n: int, user: str, ts: int) -> dict[str, Any]:
    return {"event_id": f"r{n}", "user_id": user, "ts": ts, "item_id": "i", "text": f"物流很快 {n}", "rating": 1 + n % 5}


def test_with_fewer_than_k_texts_other_events_flow_ticks_go_out_and_only_texts_are_held() -> None:
    p = BatchProcessor(FakeEncoder(), OnlineClusterer(k=3, warmup=12, seed=0), kind_of_topic=TOPICS, prefixes={},
                       limits=LIMITS, tick_every_ms=DAY_MS)
    batch = [record("reviews", 0, review_obj(0, "a", T0 + 9 * DAY_MS)), record("reviews", 1, review_obj(1, "b", T0 + 9 * DAY_MS)),
             *(record("orders", i, order_obj(i, "c", T0 + i * DAY_MS)) for i in range(5))]
    result = p.process(batch, force_fit=True, wall_ms=WALL)  # 2 texts < k: the forced fit cannot happen
    assert result.held == 2 and result.held_positions == {("reviews/0", 0), ("reviews/0", 1)}
    assert {u["offset"] for u in result.updates if u["kind"] == "order"} == set(range(5)), "orders are not held back"
    assert result.ticks == [T0 + d * DAY_MS for d in range(5)], "event time moves on for everything but the held texts"
    again = p.process([record("orders", 5, order_obj(5, "c", T0 + 9 * DAY_MS))], wall_ms=WALL)
    assert [u["offset"] for u in again.updates] == [5] and again.held_positions == result.held_positions


# --- stage 2: decay over years, caps --------------------------------------------------------


def text_update(offset: int, ts: int, *, category: str | None = "书", tokens: list[str] | None = None) -> dict[str, Any]:
    v = np.zeros(8, np.float32)
    v[offset % 8] = 1.0
    return dict(make_update(kind="review", user_id="u", event_id=f"r{offset}", ts_ms=ts, source="reviews/0", offset=offset,
                            watermark=0, data={"category": category, "sentiment": 0.5, "tokens": tokens or ["好"]},
                            embedding=v, cluster=offset % 3, keywords=["好"], model_version="m"))


def test_a_user_back_after_years_with_a_one_day_half_life_is_published() -> None:
    rules = Rules(half_life_ms=DAY_MS)
    p = new_profile("u")
    for i, ts in enumerate([T0, T0 + 3 * 365 * DAY_MS, T0 + DAY_MS]):  # back after 3 years, then a late old event
        p = apply_update(p, text_update(i, ts, category=None if i == 1 else "书"), rules)
        view = public_view(p, as_of=None, updated_at_ms=T0, rules=rules)
        assert all(s["share"] >= 0 for s in view["behaviour"]["preferred_categories"])
    assert view["interests"]["cluster"] == 1 and view["interests"]["top_clusters"][0]["share"] == 1.0
    assert p["decayed"]["categories"] == {} and view["sentiment"]["average"] == 0.5


def test_per_user_state_stays_within_its_caps_under_load() -> None:
    """A user sending 20k categories, 3k orders in the window and 300 reviews of one huge word stays small."""
    rules = Rules()
    p = new_profile("u")
    for i in range(20_000):
        p = apply_update(p, dict(make_update(kind="order", user_id="u", event_id=str(i), ts_ms=T0 + i * 1000,
                                             source="orders/0", offset=i, watermark=0,
                                             data={"cents": 100, "category": f"c{i}", "items": 1})), rules)
    for i in range(300):
        p = apply_update(p, text_update(i, T0 + i, tokens=["长" * 2000, *(f"w{i}-{j}" for j in range(20))]), rules)
    size = len(json.dumps(p, ensure_ascii=False).encode())
    print(f"\nprofile after 20k orders in 20k categories and 300 reviews: {size / 1024:.1f} KiB")
    assert len(p["decayed"]["categories"]) <= MAX_USER_CATEGORIES
    assert len(p["orders"]["recent"]) <= MAX_RECENT_ORDERS and p["orders"]["total"] == 20_000
    assert sum(len(t) for t in p["terms"].values()) <= MAX_USER_TERMS
    assert all(len(token) <= 32 for t in p["terms"].values() for token in t)
    assert size < 256 * 1024, "a changelog record far below the broker's 1 MB limit"


# --- dead-letter keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, position",
    [(b"reviews/2/41", ("reviews/2", 41)), (b"a/b/1/2", ("a/b/1", 2)), (b"not ours", None), (None, None),
     (b"\xff/1/2", None), ("r/\u0663/1".encode(), None), (b"r/01/2", None), (b"/1/2", None), (b"r/1/", None)],
)
def test_dead_letter_keys_of_others_are_recognised_as_foreign(key: bytes | None, position: tuple[str, int] | None) -> None:
    assert parse_dead_letter_key(key) == position


# --- the same records, read live or as a backlog -----------------------------------------------


def feed(seed: int) -> list[Record]:
    """Six users on two topics for 40 days; three silent for 10-20 days in the middle. Records keep topic order."""
    rng = random.Random(seed)
    objs: list[tuple[str, dict[str, Any]]] = []
    for u in range(6):
        user, t, n = f"u{u}", rng.uniform(0, 1) * DAY_MS, 0
        silent = (12 * DAY_MS, rng.uniform(22, 32) * DAY_MS) if u < 3 else (0, 0)
        while t < 40 * DAY_MS:
            if not silent[0] <= t < silent[1]:
                ts = T0 + int(t)
                objs.append(("reviews", review_obj(n, user, ts)) if rng.random() < 0.6 else ("orders", order_obj(n, user, ts)))
                n += 1
            t += rng.uniform(0.3, 2.0) * DAY_MS
    objs.sort(key=lambda o: o[1]["ts"])
    offsets: dict[str, int] = {}
    out = []
    for topic, obj in objs:
        partition = zlib.crc32(obj["user_id"].encode()) % PARTITIONS
        source = f"{topic}/{partition}"
        out.append(record(topic, offsets.setdefault(source, 0), obj, partition))
        offsets[source] += 1
    return out


def replay(records: list[Record], reads: list[list[Record]], live: bool,
           seconds_per_batch: float = 0.0) -> tuple[list[tuple], dict[str, Any]]:
    """Run ``reads`` (batches) through stage 1 and 2; the alerts (user, type, as_of) and final profiles.

    A backlog's batches take ``seconds_per_batch`` of wall time each: a slow reader (a busy encoder)."""
    p = BatchProcessor(FakeEncoder(), OnlineClusterer(k=2, warmup=4, seed=0), kind_of_topic=TOPICS, prefixes={},
                       limits=LIMITS, lateness_ms=LATENESS, tick_every_ms=DAY_MS, idle_after=0.5)
    rules = Rules(inactivity_days=5, lateness_ms=LATENESS, check_every_ms=DAY_MS)
    stage = ProfileStage({}, {}, rules, clock_ms=lambda: WALL)
    ends: dict[str, int] = {f"{t}/{q}": 0 for t in TOPICS for q in range(PARTITIONS)}
    for r in records:
        ends[r.source] = max(ends[r.source], r.offset + 1)
    alerts: list[tuple] = []

    def send(result: Any) -> None:
        sent = 0
        for tick, before in [*zip(result.ticks, result.ticks_before), (None, len(result.updates))]:
            for u in result.updates[sent:before]:
                out = stage.handle(u, zlib.crc32(u["user_id"].encode()) % PARTITIONS)
                alerts.extend((a["user_id"], a["type"], a["as_of"]) for _, a in out.alerts)
            sent = before
            if tick is not None:
                for q in range(PARTITIONS):
                    alerts.extend((a["user_id"], a["type"], a["as_of"]) for _, a in stage.handle(make_tick(tick), q).alerts)

    now = 0.0
    for i, batch in enumerate(reads):
        # Live: the clock follows event time (a day per second) and a partition with nothing new is soon idle.
        now = (json.loads(batch[-1].value)["ts"] - T0) / DAY_MS if live else i * seconds_per_batch
        seen = {r.source: r.offset + 1 for r in records[: records.index(batch[-1]) + 1]} if live else {}
        highwaters = {s: (seen.get(s, 0) if live else e) for s, e in ends.items()}
        send(p.process(batch, force_fit=True, highwaters=highwaters, now=now, wall_ms=WALL))
    for extra in (1000.0, 2000.0):  # the end of the input: every partition idle, the watermark reaches the newest event
        send(p.process([], force_fit=True, highwaters=ends, now=now + extra, wall_ms=WALL))
    views = {u: public_view(prof, as_of=None, updated_at_ms=0, rules=rules) for u, prof in stage.table.items()}
    return alerts, {u: {k: v for k, v in view.items() if k not in ("interests", "model_version")} for u, view in views.items()}


@functools.cache
def live_run(seed: int) -> tuple[list[Record], list[tuple], dict[str, Any]]:
    records = feed(seed)
    return records, *replay(records, [[r] for r in records], live=True)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 1), data=st.data())
def test_a_backlog_read_in_any_order_alerts_exactly_as_live(seed: int, data: st.DataObject) -> None:
    records, live_alerts, live_profiles = live_run(seed)
    returning = {u for u, kind, _ in live_alerts if kind == "recovered"}
    assert returning and all(
        [k for u2, k, _ in live_alerts if u2 == u][:2] == ["churn_risk", "recovered"] for u in returning
    )
    # A backlog: partitions read in any interleaving (each in its own order), in batches of any size.
    queues = {s: [r for r in records if r.source == s] for s in sorted({r.source for r in records})}
    reads: list[list[Record]] = []
    while any(queues.values()):
        source = data.draw(st.sampled_from(sorted(s for s, q in queues.items() if q)))
        take = data.draw(st.integers(1, 40))
        chunk, queues[source] = queues[source][:take], queues[source][take:]
        if reads and data.draw(st.booleans()):
            reads[-1] += chunk
        else:
            reads.append(chunk)
    # Each batch may take longer than the idleness delay (0.5 s) of wall time: updates read ahead of a
    # lagging partition must still wait for their tick (released early, they made false alerts).
    backlog_alerts, backlog_profiles = replay(records, reads, live=False,
                                              seconds_per_batch=data.draw(st.sampled_from([0.0, 0.3, 10.0])))
    by_user = lambda alerts: {u: [(k, t) for u2, k, t in alerts if u2 == u] for u in {a[0] for a in alerts}}  # noqa: E731
    assert by_user(backlog_alerts) == by_user(live_alerts)
    assert backlog_profiles == live_profiles


def test_an_update_never_waits_longer_than_the_idleness_delay() -> None:
    """A watermark that cannot move (a partition whose end is unknown) must not stop profiles."""
    box = Outbox(lateness_ms=0, tick_every_ms=DAY_MS, max_wait=30.0)
    assert box.release([upd(T0 + 5 * DAY_MS)], [], last_tick=T0, now=100.0) == ([], [])
    assert box.release([], [], last_tick=T0, now=129.0) == ([], [])
    assert box.release([], [], last_tick=T0, now=130.0) == ([upd(T0 + 5 * DAY_MS)], []) and not box.positions()
