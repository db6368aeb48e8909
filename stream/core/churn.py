"""Churn risk in [0, 1] with the reasons that drove it, and edge-triggered alert transitions.

An additive score of a few signals the literature agrees on (silence relative to a
threshold, a drop in activity against the user's own history, negative sentiment, an
order lapse) keeps every point of risk explainable. Alerts use hysteresis: one alert
when the score crosses ``alert_at`` upwards, one recovery when it falls to ``recover_at``,
and nothing in between, so subscribers get transitions, not one message per event.
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTS = {"inactive": 0.65, "activity_drop": 0.15, "negative_sentiment": 0.10, "order_lapse": 0.10}


@dataclass(frozen=True, slots=True)
class ChurnSignals:
    """What the score looks at, all in event time."""

    days_silent: float
    events_last_30d: int
    events_prior_60d: int
    sentiment: float | None
    days_since_order: float | None


@dataclass(frozen=True, slots=True)
class ChurnRisk:
    score: float
    level: str
    reasons: tuple[dict[str, object], ...]


def assess(signals: ChurnSignals, inactivity_days: float) -> ChurnRisk:
    """Score and reasons (largest contribution first).

    >>> assess(ChurnSignals(30, 0, 12, None, None), inactivity_days=14).level
    'high'
    >>> assess(ChurnSignals(1, 6, 10, 0.5, 3), inactivity_days=14)
    ChurnRisk(score=0.0464, level='low', reasons=({'code': 'inactive', 'detail': 'no events for 1.0 days (threshold 14)', 'contribution': 0.0464},))
    """
    parts: dict[str, tuple[float, str]] = {}
    inactive = min(1.0, signals.days_silent / inactivity_days)
    if inactive > 0:
        parts["inactive"] = (inactive, f"no events for {signals.days_silent:.1f} days (threshold {inactivity_days:g})")
    prior_monthly = signals.events_prior_60d / 2
    if prior_monthly >= 2:
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
