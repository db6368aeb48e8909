"""RFM (recency, frequency, monetary) scores and segments, the classic e-commerce customer value model.

Scores are 1..5 from fixed, documented thresholds rather than quantiles: a stream has no
stable population to rank against, and fixed cut-offs mean a score means the same thing
for every user and every day.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

#: days since the last order at which R drops to 4, 3, 2, 1
RECENCY_DAYS = (7, 30, 60, 90)
#: orders in the longest window at which F rises to 2, 3, 4, 5
FREQUENCY_ORDERS = (2, 3, 5, 10)
#: spend in the longest window (currency units) at which M rises to 2, 3, 4, 5
MONETARY_UNITS = (200, 500, 1000, 3000)


@dataclass(frozen=True, slots=True)
class Rfm:
    r: int
    f: int
    m: int
    segment: str


def score(recency_days: float | None, frequency: int, monetary: float) -> Rfm:
    """Scores and the segment of the common R×F grid.

    >>> score(3, 12, 5000)
    Rfm(r=5, f=5, m=5, segment='champions')
    >>> score(120, 6, 800).segment, score(None, 0, 0).segment
    ('at_risk', 'no_orders')
    """
    if recency_days is None:
        return Rfm(0, 0, 0, "no_orders")
    r = 5 - bisect_right(RECENCY_DAYS, recency_days - 1e-9)
    f = 1 + bisect_right(FREQUENCY_ORDERS, frequency)
    m = 1 + bisect_right(MONETARY_UNITS, monetary)
    return Rfm(r, f, m, segment(r, f))


def segment(r: int, f: int) -> str:
    """Name of the R×F cell: who to reward, who to win back.

    >>> [segment(5, 1), segment(3, 3), segment(1, 4), segment(1, 1), segment(3, 1)]
    ['new_or_promising', 'loyal', 'at_risk', 'hibernating', 'needs_attention']
    """
    if r >= 4 and f >= 4:
        return "champions"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 4:
        return "new_or_promising"
    if r <= 2 and f >= 3:
        return "at_risk"
    if r <= 2:
        return "hibernating"
    return "needs_attention"
