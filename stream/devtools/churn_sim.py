"""A churn scenario with known answers: heavy and light users, some going silent for good, some coming back.

Each user is a Poisson process (exponential gaps) at their own pace: heavy users every 0.5-3
days, light ones every 7-30 days. A share stops for good somewhere in the middle of the span
(``silent``); another pauses for 60-90 days and then resumes (``returning``); the rest stay
active to the end, light users included, with their naturally long gaps. :func:`score_alerts`
turns the ``churn-alerts`` a run published into precision, recall and recoveries against
those answers. Tests drive it through stage 2 directly and through a real broker.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from stream.core.events import parse_ts
from stream.devtools.feed import FeedEvent

DAY_MS = 86_400_000
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
START_MS = int(START.timestamp() * 1000)
QUERIES = ("手机壳", "蓝牙耳机 降噪", "连衣裙 夏季", "纯牛奶 整箱", "儿童绘本", "洗发水 去屑", "机械键盘", "跑步鞋 男")
CATEGORIES = ("数码", "服装", "食品", "图书", "日化", "运动")


@dataclass(frozen=True)
class Scenario:
    """The events (in event-time order) and, per user, what really happened."""

    events: list[FeedEvent]
    roles: dict[str, str]  # user -> "active" | "silent" | "returning"
    returned_at: dict[str, int]  # returning user -> event time (ms) of the first event after the pause
    end_ms: int  # event time (ms) the span ends at

    def users(self, role: str) -> set[str]:
        return {u for u, r in self.roles.items() if r == role}


def _ts(ms: int) -> str:
    return (START + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(rng: random.Random, user: str, n: int, at_ms: int) -> FeedEvent:
    """A search, or one order in five."""
    base = {"event_id": f"{user}-{n}", "user_id": user, "ts": _ts(at_ms)}
    if rng.random() < 0.2:
        return FeedEvent("order", {**base, "order_id": f"o-{user}-{n}", "amount": f"{rng.randint(10, 900)}.00",
                                   "currency": "CNY", "category": rng.choice(CATEGORIES), "items": 1}, None)
    return FeedEvent("search", {**base, "query": rng.choice(QUERIES)}, None)


def churn_scenario(n_users: int = 120, span_days: int = 180, *, seed: int = 0, silent: float = 0.25,
                   returning: float = 0.15) -> Scenario:
    """Half heavy and half light users over ``span_days``; shares ``silent`` and ``returning`` of each kind.

    Silent users stop between 35% and 70% of the span; returning users pause 60-90 days from
    between 20% and 45% of it. Raises ValueError when the span leaves no room for that.
    """
    if span_days < 120 or not 0 <= silent + returning < 1:
        raise ValueError(f"need span_days >= 120 and silent + returning < 1, got {span_days}, {silent}, {returning}")
    rng = random.Random(seed)
    end = span_days * DAY_MS
    roles, returned_at, events = {}, {}, []
    for i in range(n_users):
        user = f"c{i:04d}"
        mean_gap_days = rng.uniform(0.5, 3.0) if i % 2 == 0 else rng.uniform(7.0, 30.0)
        draw = rng.random()
        role = "silent" if draw < silent else "returning" if draw < silent + returning else "active"
        pause = (0, 0)
        if role == "silent":
            pause = (int(rng.uniform(0.35, 0.7) * end), end + 1)
        elif role == "returning":
            start = int(rng.uniform(0.2, 0.45) * end)
            pause = (start, start + int(rng.uniform(60, 90) * DAY_MS))
        t, n = int(rng.uniform(0, 5) * DAY_MS), 0
        while t < end:
            if pause[0] <= t < pause[1]:
                t = pause[1]
                if role == "returning":
                    returned_at[user] = START_MS + t
                continue
            events.append(_event(rng, user, n, t))
            n += 1
            t += max(1, int(rng.expovariate(1.0 / mean_gap_days) * DAY_MS))
        roles[user] = role
    events.sort(key=lambda fe: (fe.event["ts"], fe.event["event_id"]))
    return Scenario(events, roles, returned_at, START_MS + end)


@dataclass(frozen=True)
class ChurnScore:
    """Alerts against the answers; ``precision``/``recall`` on who stands alerted at the end."""

    precision: float
    recall: float
    recovered: float  # share of returning users with a churn_risk during the pause, then a recovered
    false_alarms: int  # churn_risk alerts ever raised for users who never stopped
    alerted: int
    silent: int

    def __str__(self) -> str:
        return (f"precision={self.precision:.3f} recall={self.recall:.3f} recovered={self.recovered:.3f} "
                f"(silent={self.silent}, alerted at the end={self.alerted}, alerts to always-active users="
                f"{self.false_alarms})")


def score_alerts(scenario: Scenario, alerts: Iterable[Mapping[str, object]]) -> ChurnScore:
    """Score the ``churn-alerts`` a run published (schemas/churn-alert.schema.json), in any order."""
    history: dict[str, list[tuple[int, str]]] = {}
    for alert in alerts:
        history.setdefault(str(alert["user_id"]), []).append((parse_ts(str(alert["as_of"])), str(alert["type"])))
    for h in history.values():
        h.sort()
    alerted = {u for u, h in history.items() if h[-1][1] == "churn_risk"}
    silent = scenario.users("silent")
    hit = len(alerted & silent)
    recovered = 0
    for user, back in scenario.returned_at.items():
        kinds = [k for at, k in history.get(user, []) if at < back]
        after = [k for at, k in history.get(user, []) if at >= back]
        recovered += bool(kinds and kinds[-1] == "churn_risk" and after[:1] == ["recovered"])
    false_alarms = sum(k == "churn_risk" for u in scenario.users("active") for _, k in history.get(u, []))
    return ChurnScore(
        precision=hit / max(1, len(alerted)),
        recall=hit / max(1, len(silent)),
        recovered=recovered / max(1, len(scenario.returned_at)),
        false_alarms=false_alarms,
        alerted=len(alerted),
        silent=len(silent),
    )
