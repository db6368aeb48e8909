"""Churn risk in [0, 1] with the reasons that drove it, and edge-triggered alert transitions.

An additive score of a few signals the literature agrees on (silence, a drop in activity
against the user's own history, negative sentiment, an order lapse) keeps every point of
risk explainable. Alerts use hysteresis: one alert when the score crosses ``alert_at``
upwards, one recovery when it falls to ``recover_at``, and nothing in between, so
subscribers get transitions, not one message per event.

Silence is judged against the user's own rhythm. Gaps between a user's distinct active
days are modelled as log-normal (:class:`Rhythm`: count, mean and variance of the log-gaps,
sufficient statistics of that model); the silence at which the user counts as fully
inactive is the 99th percentile of their gaps, kept between half of and four times the
global ``inactivity_days``. A daily shopper silent for a week is unusual; a monthly one is
not. Users with fewer than :data:`MIN_GAPS` gaps fall back to the global threshold, and a
prior spread of :data:`PRIOR_LOG_SD` (worth :data:`PRIOR_GAPS` gaps) keeps a few regular
gaps from making the threshold razor-thin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

WEIGHTS = {"inactive": 0.65, "activity_drop": 0.15, "negative_sentiment": 0.10, "order_lapse": 0.10}
MIN_MONTHLY = 4  # activity drop needs this many events a month before: P(quiet month | Poisson(4)) < 2%
MIN_GAPS = 3  # fewer gaps between active days: the global threshold applies
TAIL_Z = 2.33  # the threshold is this many log-sds above the usual gap: the 99th percentile of a log-normal
PRIOR_LOG_SD = 1.0  # spread of log-gaps assumed before a user shows their own (exponential gaps: about 1.28)
PRIOR_GAPS = 2.0  # how many gaps that prior is worth
MIN_SHARE, MAX_FACTOR = 0.5, 4.0  # per-user thresholds stay within [inactivity / 2, inactivity * 4]


@dataclass(frozen=True, slots=True)
class Rhythm:
    """A user's gaps between distinct active days: how many, and the mean and variance of ln(gap in days).

    >>> r = Rhythm.from_days([10, 11, 13, 14, 16])
    >>> r.gaps, round(r.usual_gap, 2)
    (4, 1.41)
    >>> Rhythm.from_days([5, 5, 3]) == Rhythm.from_days([3, 5])
    True
    """

    gaps: int
    mean_log: float
    var_log: float

    @classmethod
    def from_days(cls, days: Iterable[int]) -> Rhythm:
        """From active day numbers in any order, duplicates allowed: the set decides, so delivery order cannot."""
        ordered = sorted(set(days))
        logs = [math.log(b - a) for a, b in zip(ordered, ordered[1:])]
        if not logs:
            return cls(0, 0.0, 0.0)
        mean = sum(logs) / len(logs)
        return cls(len(logs), mean, sum((x - mean) ** 2 for x in logs) / len(logs))

    @property
    def usual_gap(self) -> float:
        """Geometric mean of the gaps in days: the median gap of the log-normal model."""
        return math.exp(self.mean_log)


def silence_threshold(rhythm: Rhythm | None, inactivity_days: float) -> float:
    """Days of silence at which this user counts as fully inactive.

    >>> silence_threshold(None, 14), silence_threshold(Rhythm.from_days([1, 30]), 14)
    (14, 14)
    >>> daily, weekly = Rhythm.from_days(range(0, 60)), Rhythm.from_days(range(0, 120, 7))
    >>> silence_threshold(daily, 14), round(silence_threshold(weekly, 14), 1)
    (7.0, 14.9)
    >>> silence_threshold(Rhythm.from_days(range(0, 360, 30)), 14)  # monthly: capped at 4 x 14
    56.0
    """
    if rhythm is None or rhythm.gaps < MIN_GAPS:
        return inactivity_days
    n = rhythm.gaps
    var = (n * rhythm.var_log + PRIOR_GAPS * PRIOR_LOG_SD**2) / (n + PRIOR_GAPS)
    own = math.exp(rhythm.mean_log + TAIL_Z * math.sqrt(var))
    return min(MAX_FACTOR * inactivity_days, max(MIN_SHARE * inactivity_days, own))


@dataclass(frozen=True, slots=True)
class ChurnSignals:
    """What the score looks at, all in event time; ``rhythm`` from the user's active days, when known."""

    days_silent: float
    events_last_30d: int
    events_prior_60d: int
    sentiment: float | None
    days_since_order: float | None
    rhythm: Rhythm | None = None


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
    ('high', "no events for 20.0 days, 5.2x this user's usual gap of 3.9 days (threshold 10.5)")
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
    if signals.days_since_order is not None and signals.days_since_order > inactivity_days:
        lapse = min(1.0, (signals.days_since_order - inactivity_days) / inactivity_days)
        parts["order_lapse"] = (lapse, f"last order {signals.days_since_order:.1f} days ago")
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
