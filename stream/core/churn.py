"""Churn risk in [0, 1] with the reasons that drove it, and edge-triggered alert transitions.

An additive score of a few signals the literature agrees on (silence, a drop in activity
against the user's own history, negative sentiment, an order lapse) keeps every point of
risk explainable. Alerts use hysteresis: one alert when the score crosses ``alert_at``
upwards, one recovery when it falls to ``recover_at``, and nothing in between, so
subscribers get transitions, not one message per event.

Silence is judged against the user's own pace. Each user's active days are taken as a
Poisson process at the user's own rate (the assumption behind Pareto/NBD and BG/NBD); given
the gaps seen so far (:class:`Rhythm`: their count and total, the sufficient statistics of that
model) the rate is gamma-distributed, so the chance that a still-active user stays silent for
t days is Lomax, ``(beta / (beta + t)) ** alpha``. The silence at which a user counts as fully
inactive is the one an active user at that pace exceeds with probability :data:`TAIL`, kept
between half of and five times the global ``inactivity_days``: a daily shopper silent for a
week is unusual, a monthly one is not. Users with fewer than :data:`MIN_GAPS` gaps fall back
to the global threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

WEIGHTS = {"inactive": 0.65, "activity_drop": 0.15, "negative_sentiment": 0.10, "order_lapse": 0.10}
MIN_MONTHLY = 4  # activity drop needs this many events a month before: P(quiet month | Poisson(4)) < 2%
MIN_GAPS = 2  # fewer gaps between active days (at most two active days): the global threshold applies
TAIL = 0.005  # a silence an active user at this pace exceeds this rarely counts as full inactivity
PRIOR_GAPS = 1.0  # the gamma prior on the rate is worth one gap at the pace the global threshold implies
MIN_SHARE, MAX_FACTOR = 0.5, 5.0  # per-user thresholds stay within [inactivity / 2, inactivity * 5]
MAX_ACTIVE_DAYS = 60  # distinct active days a profile keeps for its rhythm: two months of a daily user


@dataclass(frozen=True, slots=True)
class Rhythm:
    """A user's gaps between distinct active days: how many, and their total in days.

    >>> r = Rhythm.from_days([10, 11, 13, 14, 16])
    >>> r.gaps, r.total_days, r.usual_gap
    (4, 6, 1.5)
    >>> Rhythm.from_days([5, 5, 3]) == Rhythm.from_days([3, 5])
    True
    """

    gaps: int
    total_days: int

    @classmethod
    def from_days(cls, days: Iterable[int]) -> Rhythm:
        """From active day numbers in any order, duplicates allowed: the set decides, so delivery order cannot."""
        ordered = sorted(set(days))
        return cls(max(0, len(ordered) - 1), ordered[-1] - ordered[0] if ordered else 0)

    @property
    def usual_gap(self) -> float:
        """Mean gap in days (0 without gaps)."""
        return self.total_days / self.gaps if self.gaps else 0.0


def add_active_day(days: Iterable[int], day: int, keep: int = MAX_ACTIVE_DAYS) -> list[int]:
    """The ``keep`` most recent distinct active days once ``day`` is one, sorted.

    The newest ``keep`` of a union does not depend on the order the days arrive in, nor on
    repeats, so out-of-order and redelivered events give the same list.

    >>> add_active_day([3, 5], 4), add_active_day([3, 5], 5), add_active_day([1, 2, 3], 0, keep=3)
    ([3, 4, 5], [3, 5], [1, 2, 3])
    """
    return sorted({*days, day})[-keep:]


def rhythm_view(rhythm: Rhythm, inactivity_days: float) -> dict[str, object]:
    """The rhythm as the profile shows it (schemas/profile.schema.json ``churn.rhythm``).

    >>> rhythm_view(Rhythm.from_days([0, 7, 14, 21]), 14)
    {'gaps': 3, 'usual_gap_days': 7.0, 'threshold_days': 65.27}
    >>> rhythm_view(Rhythm.from_days([0, 7]), 14)
    {'gaps': 1, 'usual_gap_days': None, 'threshold_days': 14}
    """
    own = rhythm.gaps >= MIN_GAPS
    return {
        "gaps": rhythm.gaps,
        "usual_gap_days": round(rhythm.usual_gap, 2) if own else None,
        "threshold_days": round(silence_threshold(rhythm, inactivity_days), 2),
    }


def silence_threshold(rhythm: Rhythm | None, inactivity_days: float) -> float:
    """Days of silence at which this user counts as fully inactive.

    >>> silence_threshold(None, 14), silence_threshold(Rhythm.from_days([1, 30]), 14)
    (14, 14)
    >>> daily, weekly = Rhythm.from_days(range(0, 60)), Rhythm.from_days(range(0, 120, 7))
    >>> silence_threshold(daily, 14), round(silence_threshold(weekly, 14), 1)
    (7.0, 41.6)
    >>> silence_threshold(Rhythm.from_days(range(0, 360, 30)), 14)  # monthly: capped at 5 x 14
    70.0
    """
    if rhythm is None or rhythm.gaps < MIN_GAPS:
        return inactivity_days
    prior_gap = inactivity_days / math.log(1 / TAIL)  # the pace at which the global threshold has the same tail
    alpha = rhythm.gaps + PRIOR_GAPS
    beta = rhythm.total_days + PRIOR_GAPS * prior_gap
    own = beta * (TAIL ** (-1 / alpha) - 1)
    return min(MAX_FACTOR * inactivity_days, max(MIN_SHARE * inactivity_days, own))


def order_patience(days_per_order: float | None, inactivity_days: float) -> float:
    """Days without an order before the lapse signal starts: the global threshold, or longer for a user
    who orders rarely (a lapse an order process at the user's pace exceeds with probability :data:`TAIL`).

    >>> order_patience(None, 14), order_patience(2.0, 14), round(order_patience(30.0, 14), 1)
    (14, 14, 158.9)
    """
    if days_per_order is None:
        return inactivity_days
    return max(inactivity_days, days_per_order * math.log(1 / TAIL))


@dataclass(frozen=True, slots=True)
class ChurnSignals:
    """What the score looks at, all in event time; ``rhythm`` from the user's active days, when known."""

    days_silent: float
    events_last_30d: int
    events_prior_60d: int
    sentiment: float | None
    days_since_order: float | None
    rhythm: Rhythm | None = None
    days_per_order: float | None = None  # days observed (first event to now) per order: the user's order pace


@dataclass(frozen=True, slots=True)
class ChurnRisk:
    score: float
    level: str
    reasons: tuple[dict[str, object], ...]


def _silence(signals: ChurnSignals, inactivity_days: float) -> tuple[float, str]:
    """The inactivity signal in [0, 1] and its explanation."""
    silent, rhythm = signals.days_silent, signals.rhythm
    threshold = silence_threshold(rhythm, inactivity_days)
    value = min(1.0, silent / threshold)
    if rhythm is None or rhythm.gaps < MIN_GAPS:
        return value, f"no events for {silent:.1f} days (threshold {inactivity_days:g})"
    usual = rhythm.usual_gap
    return value, (
        f"no events for {silent:.1f} days, {silent / usual:.1f}x this user's usual gap of {usual:.1f} days "
        f"(threshold {threshold:.1f})"
    )


def assess(signals: ChurnSignals, inactivity_days: float) -> ChurnRisk:
    """Score and reasons (largest contribution first).

    >>> assess(ChurnSignals(30, 0, 12, None, None), inactivity_days=14).level
    'high'
    >>> assess(ChurnSignals(1, 6, 10, 0.5, 3), inactivity_days=14)
    ChurnRisk(score=0.0464, level='low', reasons=({'code': 'inactive', 'detail': 'no events for 1.0 days (threshold 14)', 'contribution': 0.0464},))

    The same 20 silent days: alarming for a user active every few days, ordinary for a monthly one.

    >>> every_few_days = Rhythm.from_days([0, 3, 7, 11, 15, 19, 22, 26, 30, 35, 39])
    >>> monthly = Rhythm.from_days([0, 29, 61, 90, 118, 150])
    >>> heavy = assess(ChurnSignals(20, 2, 30, None, None, every_few_days), inactivity_days=14)
    >>> heavy.level, heavy.reasons[0]["detail"]
    ('high', "no events for 20.0 days, 5.1x this user's usual gap of 3.9 days (threshold 25.8)")
    >>> assess(ChurnSignals(20, 0, 2, None, None, monthly), inactivity_days=14).level
    'low'
    """
    parts: dict[str, tuple[float, str]] = {}
    inactive, detail = _silence(signals, inactivity_days)
    if inactive > 0:
        parts["inactive"] = (inactive, detail)
    prior_monthly = signals.events_prior_60d / 2
    if prior_monthly >= MIN_MONTHLY:
        drop = max(0.0, 1.0 - signals.events_last_30d / prior_monthly)
        if drop > 0:
            parts["activity_drop"] = (
                drop, f"{signals.events_last_30d} events in the last 30 days vs {prior_monthly:g}/30 days before"
            )
    if signals.sentiment is not None and signals.sentiment < 0:
        parts["negative_sentiment"] = (-signals.sentiment, f"average review sentiment {signals.sentiment:.2f}")
    patience = order_patience(signals.days_per_order, inactivity_days)
    if signals.days_since_order is not None and signals.days_since_order > patience:
        lapse = min(1.0, (signals.days_since_order - patience) / patience)
        pace = "" if signals.days_per_order is None else f" (one every {signals.days_per_order:.1f} days so far)"
        parts["order_lapse"] = (lapse, f"last order {signals.days_since_order:.1f} days ago{pace}")
    contributions = {code: WEIGHTS[code] * value for code, (value, _) in parts.items()}
    score = round(min(1.0, sum(contributions.values())), 4)
    reasons = tuple(
        {"code": code, "detail": parts[code][1], "contribution": round(contributions[code], 4)}
        for code in sorted(contributions, key=lambda c: -contributions[c])
    )
    return ChurnRisk(score, level(score), reasons)


def level(score: float) -> str:
    """low < 0.3 <= medium < 0.6 <= high."""
    return "high" if score >= 0.6 else "medium" if score >= 0.3 else "low"


def transition(alerted: bool, score: float, alert_at: float, recover_at: float) -> str | None:
    """"alert", "recovered" or None: the edge, with hysteresis between the two thresholds.

    >>> transition(False, 0.7, 0.6, 0.4), transition(True, 0.5, 0.6, 0.4), transition(True, 0.3, 0.6, 0.4)
    ('alert', None, 'recovered')
    """
    if not alerted and score >= alert_at:
        return "alert"
    if alerted and score <= recover_at:
        return "recovered"
    return None
