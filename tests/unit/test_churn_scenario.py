"""Churn alerts over event time on a mixed population with known answers, through stage 2 (no broker).

Heavy and light users, some silent for good, some back after a long pause
(stream/devtools/churn_sim.py). Events and day-boundary ticks go through ProfileStage in
event-time order, as stage 1 would send them; the published alerts are scored against the
answers. tests/integration/test_churn_rhythm.py runs the same scenario through a real broker.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from stream.core.events import parse_ts
from stream.core.messages import make_tick, make_update
from stream.core.profile import DAY_MS, Rules
from stream.core.stage2 import ProfileStage
from stream.devtools.churn_sim import Scenario, churn_scenario, score_alerts
from stream.devtools.feed import FeedEvent

RULES = Rules(inactivity_days=14)


def update(fe: FeedEvent, offset: int) -> dict:
    """What stage 1 sends for the event (searches carry tokens and an embedding upstream; stage 2's churn ignores them)."""
    e = fe.event
    data = {"cents": int(Decimal(e["amount"]) * 100), "category": e["category"], "items": e["items"]} if fe.kind == "order" else {}
    return dict(make_update(kind=fe.kind, user_id=e["user_id"], event_id=e["event_id"], ts_ms=parse_ts(e["ts"]),
                            source=f"{fe.kind}/0", offset=offset, watermark=parse_ts(e["ts"]), data=data))


def source_offsets(events: list[FeedEvent]) -> dict[str, int]:
    """Each kind is one source partition here: offsets count that kind's events in feed order."""
    seen: dict[str, int] = {}
    out = {}
    for fe in events:
        out[fe.event["event_id"]] = seen[fe.kind] = seen.get(fe.kind, -1) + 1
    return out


def run_stage2(scenario: Scenario, events: list[FeedEvent]) -> list[dict]:
    """Every event, and a tick at each day boundary once event time has passed it; the alerts published."""
    stage = ProfileStage({}, {}, RULES, clock_ms=lambda: scenario.end_ms)
    alerts, next_tick = [], None
    offsets = source_offsets(scenario.events)
    for fe in events:
        ts = parse_ts(fe.event["ts"])
        next_tick = next_tick or ts // DAY_MS * DAY_MS
        while next_tick < ts:
            alerts += [a for _, a in stage.handle(make_tick(next_tick), 0).alerts]
            next_tick += DAY_MS
        alerts += [a for _, a in stage.handle(update(fe, offsets[fe.event["event_id"]]), 0).alerts]
    while next_tick <= scenario.end_ms:
        alerts += [a for _, a in stage.handle(make_tick(next_tick), 0).alerts]
        next_tick += DAY_MS
    return alerts


@pytest.mark.parametrize("seed", [1, 2])
def test_alerts_find_the_silent_users_spare_the_light_ones_and_recover_the_returning(seed: int) -> None:
    scenario = churn_scenario(n_users=300, seed=seed)
    score = score_alerts(scenario, run_stage2(scenario, scenario.events))
    print(f"\nseed {seed}: {score}")
    assert score.precision >= 0.9 and score.recall >= 0.9, score
    assert score.recovered >= 0.9, score


def interleave(queues: list[list[FeedEvent]], rng: random.Random) -> list[FeedEvent]:
    """A random merge that keeps each queue's order, as a consumer of several partitions sees them."""
    queues, out = [list(q) for q in queues if q], []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        queues = [q for q in queues if q]
    return out


def test_the_alerts_do_not_depend_on_how_partitions_interleave_within_a_day() -> None:
    """Searches and orders come from different partitions: any interleaving within a day gives the same alerts
    (and, after a day's end, ticks make the checks whatever arrived first)."""
    scenario = churn_scenario(n_users=60, seed=3)
    rng = random.Random(0)
    by_day: dict[int, list[FeedEvent]] = {}
    for fe in scenario.events:
        by_day.setdefault(parse_ts(fe.event["ts"]) // DAY_MS, []).append(fe)
    shuffled = [fe for day in sorted(by_day)
                for fe in interleave([[e for e in by_day[day] if e.kind == k] for k in ("search", "order")], rng)]
    assert shuffled != scenario.events

    def key(alerts: list[dict]) -> list[tuple]:
        return sorted((a["user_id"], a["type"], a["as_of"], a["score"]) for a in alerts)

    assert key(run_stage2(scenario, shuffled)) == key(run_stage2(scenario, scenario.events))
