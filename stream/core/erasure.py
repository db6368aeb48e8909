"""Right to be forgotten in stage 1: which users asked, and as of which event time.

A forget request covers everything the user did up to its event time, whenever those
records arrive: texts held for the warm start, and texts still waiting on a lagging
partition, are dropped instead of learned (keywords, snippets, centres) or published.
Events after the request are a new relationship and flow normally.

Entries live in the stage-1 checkpoint and expire ``horizon_ms`` of event time after the
request (the watermark has then passed any record the request could cover, short of a
replay of older history); stage 2 keeps its own permanent record for profiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HORIZON_MS = 30 * 86_400_000


class Erasures:
    """user id -> event time of the newest forget request for that user."""

    def __init__(self, horizon_ms: int = HORIZON_MS) -> None:
        self.horizon_ms = horizon_ms
        self.at: dict[str, int] = {}

    def record(self, user: str, ts_ms: int) -> None:
        self.at[user] = max(ts_ms, self.at.get(user, ts_ms))

    def covers(self, user: str | None, ts_ms: int) -> bool:
        """Whether an event of ``user`` at ``ts_ms`` falls under a forget request.

        >>> e = Erasures(); e.record("u1", 100)
        >>> e.covers("u1", 100), e.covers("u1", 101), e.covers("u2", 5)
        (True, False, False)
        """
        at = self.at.get(user) if user is not None else None
        return at is not None and ts_ms <= at

    def expire(self, watermark: int) -> None:
        """Drop requests the watermark has left ``horizon_ms`` behind."""
        self.at = {u: t for u, t in self.at.items() if t + self.horizon_ms > watermark}

    def state(self) -> dict[str, Any]:
        return {"erasures": dict(self.at)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.at = {str(u): int(t) for u, t in state.get("erasures", {}).items()}
