"""Churn that knows each user's rhythm: silence is judged against the user's own gaps between active days."""

from __future__ import annotations

import math
import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stream.core.churn import (
    MAX_FACTOR,
    MIN_GAPS,
    MIN_SHARE,
    ChurnSignals,
    Rhythm,
    add_active_day,
    assess,
    order_patience,
    silence_threshold,
)

INACTIVITY = 14.0
ALERT_AT = 0.6
day_sets = st.lists(st.integers(0, 2000), min_size=0, max_size=60)


def signals_at(days: list[int], as_of: float) -> ChurnSignals:
    """What stage 2 knows at ``as_of`` (in days) about a user active on ``days``: silence, windows, rhythm."""
    seen = [d for d in days if d <= as_of]
    return ChurnSignals(
        days_silent=as_of - (max(seen) + 0.5),  # events land mid-day on average
        events_last_30d=sum(1 for d in seen if as_of - d < 30),
        events_prior_60d=sum(1 for d in seen if 30 <= as_of - d < 90),
        sentiment=None,
        days_since_order=None,
        rhythm=Rhythm.from_days(seen),
    )


@given(day_sets, st.randoms(use_true_random=False))
def test_rhythm_depends_on_the_set_of_days_only(days: list[int], rnd: random.Random) -> None:
    shuffled = days + days[: len(days) // 2]
    rnd.shuffle(shuffled)
    assert Rhythm.from_days(shuffled) == Rhythm.from_days(days)


@given(day_sets)
def test_rhythm_is_the_count_and_total_of_gaps_between_distinct_days(days: list[int]) -> None:
    gaps = np.diff(sorted(set(days)))
    r = Rhythm.from_days(days)
    assert (r.gaps, r.total_days) == (len(gaps), int(gaps.sum()))
    assert math.isclose(r.usual_gap, float(gaps.mean()) if len(gaps) else 0.0)


@given(day_sets, st.integers(0, 2000))
def test_active_days_keep_the_newest_distinct_days_whatever_the_arrival_order(days: list[int], extra: int) -> None:
    forward, backward = [], []
    for d in [*days, extra]:
        forward = add_active_day(forward, d, keep=10)
    for d in reversed([*days, extra, *days]):
        backward = add_active_day(backward, d, keep=10)
    assert forward == backward == sorted({*days, extra})[-10:]


@given(st.floats(0.1, 100.0), st.floats(1.0, 60.0))
def test_rare_buyers_get_more_patience_before_an_order_lapse(days_per_order: float, inactivity: float) -> None:
    patience = order_patience(days_per_order, inactivity)
    assert patience >= inactivity and patience >= order_patience(days_per_order / 2, inactivity)
    lapsed = ChurnSignals(0, 0, 0, None, patience * 0.99, None, days_per_order)
    assert not assess(lapsed, inactivity).reasons


@given(day_sets, st.floats(1.0, 60.0))
def test_threshold_stays_within_bounds_and_falls_back_without_history(days: list[int], inactivity: float) -> None:
    r = Rhythm.from_days(days)
    t = silence_threshold(r, inactivity)
    assert MIN_SHARE * inactivity <= t <= MAX_FACTOR * inactivity
    if r.gaps < MIN_GAPS:
        assert t == inactivity and "usual gap" not in assess(ChurnSignals(5, 0, 0, None, None, r), inactivity).reasons[0]["detail"]


@given(st.lists(st.integers(1, 40), min_size=MIN_GAPS, max_size=40), st.integers(2, 5))
def test_slower_users_get_at_least_as_much_slack(gaps: list[int], factor: int) -> None:
    days = np.cumsum([0, *gaps]).tolist()
    slower = np.cumsum([0, *[g * factor for g in gaps]]).tolist()
    assert silence_threshold(Rhythm.from_days(slower), INACTIVITY) >= silence_threshold(Rhythm.from_days(days), INACTIVITY)


def test_reasons_say_how_unusual_the_silence_is_for_this_user() -> None:
    every_other_day = list(range(0, 60, 2))
    risk = assess(signals_at(every_other_day, 58.5 + 20), INACTIVITY)
    assert risk.score >= ALERT_AT
    detail = risk.reasons[0]["detail"]
    assert risk.reasons[0]["code"] == "inactive" and "10.0x this user's usual gap of 2.0 days" in detail, detail


def test_a_light_user_between_purchases_is_not_flagged_but_a_heavy_user_as_silent_is() -> None:
    light = list(range(0, 200, 25))  # every 25 days, last on day 175
    heavy = list(range(100, 176))  # daily until day 175
    as_of = 175 + 21  # both silent for three weeks
    assert assess(signals_at(light, as_of), INACTIVITY).score < ALERT_AT
    assert assess(signals_at(heavy, as_of), INACTIVITY).score >= ALERT_AT
    # The global threshold alone cannot tell them apart: both look alike without a rhythm.
    no_rhythm = [ChurnSignals(s.days_silent, s.events_last_30d, s.events_prior_60d, None, None)
                 for s in (signals_at(light, as_of), signals_at(heavy, as_of))]
    assert all(assess(s, INACTIVITY).score >= ALERT_AT for s in no_rhythm)


def simulated_users(n: int, seed: int) -> tuple[dict[str, list[int]], set[str]]:
    """Heavy users (0.3-2 events a day) and light ones (7-30 days between events, exponential gaps) over
    180 days; a third of each group stops for good at a random day between 60 and 130."""
    rng = random.Random(seed)
    users, silent = {}, set()
    for i in range(n):
        mean_gap = 1 / rng.uniform(0.3, 2.0) if i % 2 == 0 else rng.uniform(7, 30)
        stop = rng.uniform(60, 130) if i % 3 == 0 else 180.0
        t, days = rng.uniform(0, 10), []
        while t < stop:
            days.append(int(t))
            t += rng.expovariate(1 / mean_gap)
        users[f"u{i}"] = days
        if stop < 180:
            silent.add(f"u{i}")
    return users, silent


def precision_recall(users: dict[str, list[int]], silent: set[str], strip_rhythm: bool) -> tuple[float, float]:
    flagged = set()
    for user, days in users.items():
        s = signals_at(days, 180.0)
        if strip_rhythm:
            s = ChurnSignals(s.days_silent, s.events_last_30d, s.events_prior_60d, None, None)
        if assess(s, INACTIVITY).score >= ALERT_AT:
            flagged.add(user)
    return len(flagged & silent) / max(1, len(flagged)), len(flagged & silent) / len(silent)


def test_rhythm_separates_silent_users_from_light_ones_on_a_mixed_population() -> None:
    users, silent = simulated_users(1200, seed=7)
    precision, recall = precision_recall(users, silent, strip_rhythm=False)
    baseline_precision, _ = precision_recall(users, silent, strip_rhythm=True)
    print(f"\nrhythm: precision={precision:.3f} recall={recall:.3f}; global threshold: precision={baseline_precision:.3f}")
    assert precision >= 0.9 and recall >= 0.9
    assert precision > baseline_precision
