"""Alerts and profiles are a function of event time, not of read speed.

One generated feed, with users who go silent for weeks and come back, runs through a real
worker twice: once as a backlog read at full speed (everything produced before the worker
starts), once paced over wall-clock time (60 days of event time in about a minute, read
live). Both runs must publish the same churn alerts (type and as_of, per user) and the same
final profiles; only cluster ids (which depend on the online model's history), model
versions and processing times may differ. Returning users get ``churn_risk`` then
``recovered`` in both.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from stream.config import Settings
from stream.core.messages import decode_interest_vector
from stream.devtools.feed import FeedEvent
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic
from stream.kafka.topics import ensure_topics

from .worker_process import wait_for_counts, wait_for_watermark

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPAN_DAYS = 60
PACED_SECONDS = 60.0
LATENESS_S = 6 * 3600
TEXTS = ["屏幕很清晰，物流很快", "电池不耐用，很失望", "蓝牙耳机 降噪", "尺码偏小，质量一般", "跑步鞋 轻便", "包装完好，默认好评",
         "咖啡豆 深烘", "手机壳 防摔", "音质不错，推荐购买", "退货太麻烦了"]


def replay_feed(seed: int, users: int = 16, returning: int = 6) -> list[FeedEvent]:
    """Every user active about every 1.5 days; ``returning`` of them silent for 16-30 days in the middle."""
    rng = random.Random(seed)
    events: list[FeedEvent] = []
    for u in range(users):
        user = f"r{u:02d}"
        silent = (0, 0)
        if u < returning:
            begin = rng.uniform(12, 22) * DAY_MS
            silent = (int(begin), int(begin + rng.uniform(16, 30) * DAY_MS))
        t = rng.uniform(0, 1) * DAY_MS
        n = 0
        while t < SPAN_DAYS * DAY_MS:
            if not silent[0] <= t < silent[1]:
                events.append(_event(rng, user, n, START_MS + int(t)))
                n += 1
            t += rng.uniform(0.5, 2.5) * DAY_MS
    return sorted(events, key=lambda e: e.event["ts"])


def _event(rng: random.Random, user: str, n: int, ts: int) -> FeedEvent:
    kind = rng.choice(["review", "review", "search", "order"])
    base = {"event_id": f"{user}-{n}", "user_id": user, "ts": ts}
    if kind == "review":
        return FeedEvent(kind, {**base, "item_id": f"sku-{n}", "rating": rng.randint(1, 5), "text": rng.choice(TEXTS)}, None)
    if kind == "search":
        return FeedEvent(kind, {**base, "query": rng.choice(TEXTS)}, None)
    amount = rng.choice([f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}", rng.randint(1, 500)])  # text or number
    return FeedEvent(kind, {**base, "order_id": f"o-{user}-{n}", "amount": amount, "currency": "CNY", "items": 1}, None)


def variant(settings: Settings, tag: str, tmp_path: Path) -> Settings:
    """The same settings with their own app id, topics, data directory and port."""
    from stream.devtools.broker import free_port

    topics = {f: f"{getattr(settings, f)}-{tag}" for f in Settings.model_fields if f.startswith("topic_")}
    return settings.model_copy(update={**topics, "app_id": f"{settings.app_id}-{tag}", "data_dir": tmp_path / tag,
                                       "web_port": free_port()})


def expected_counts(events: list[FeedEvent]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for fe in events:
        user = counts.setdefault(fe.event["user_id"], {})
        user[fe.kind] = user.get(fe.kind, 0) + 1
    return counts


def settled_alerts(settings: Settings, quiet: float = 5.0, timeout: float = 90.0) -> dict[str, list[tuple[str, str]]]:
    """Per user, the (type, as_of) of its alerts in order, once the topic has stopped growing for ``quiet`` s."""
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        alerts = [json.loads(v) for _, v in read_topic(settings, settings.topic_alerts) if v is not None]
        if len(alerts) != last:
            last, since = len(alerts), time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(1.0)
    per_user: dict[str, list[tuple[str, str]]] = {}
    for a in alerts:
        per_user.setdefault(a["user_id"], []).append((a["type"], a["as_of"]))
    return per_user


def comparable(profile: dict[str, Any]) -> dict[str, Any]:
    """A profile without what may differ between runs: cluster ids and keywords, model version, processing time."""
    p = {k: v for k, v in profile.items() if k not in ("updated_at", "model_version")}
    p["interests"] = {"interest_vector": decode_interest_vector(profile["interests"]["interest_vector"]).tolist()}
    return p


def same(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences between two JSON values; floats equal within 1e-3 (batching changes the last bits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} != {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-3)
        return [] if ok else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def run(settings: Settings, events: list[FeedEvent], log_dir: Path, *, paced: bool) -> tuple[dict, dict]:
    """Alerts per user and the newest profile per user after ``events`` went through a fresh worker."""
    from .worker_process import latest_profiles

    ensure_topics(settings)
    worker = WorkerProcess(settings, log_dir, name="paced" if paced else "backlog")
    if not paced:
        produce_feed(settings, events)
    worker.start()
    try:
        worker.wait_healthy()
        if paced:
            produce_feed(settings, events, rate=len(events) / PACED_SECONDS)
        wait_for_counts(settings, expected_counts(events), worker, timeout=240.0)
        wait_for_watermark(worker, events[-1].event["ts"] - LATENESS_S * 1000, timeout=120.0)
        alerts = settled_alerts(settings)
        profiles = {u: comparable(p) for u, p in latest_profiles(settings).items()}
    finally:
        worker.stop()
    return alerts, profiles


def test_backlog_and_paced_replays_give_the_same_alerts_and_profiles(broker, settings_factory, tmp_path: Path) -> None:
    base = settings_factory(
        broker.bootstrap, partitions=2, churn_check_hours=24, inactivity_days=7, lateness_seconds=LATENESS_S,
        idle_partition_seconds=1.0, warmup=20, warmup_max_wait=2.0,
    )
    events = replay_feed(seed=11)
    returning = {f"r{u:02d}" for u in range(6)}

    backlog_alerts, backlog_profiles = run(variant(base, "backlog", tmp_path), events, tmp_path / "logs", paced=False)
    paced_alerts, paced_profiles = run(variant(base, "paced", tmp_path), events, tmp_path / "logs", paced=True)

    for user in returning:
        types = [t for t, _ in backlog_alerts.get(user, [])]
        assert types[:2] == ["churn_risk", "recovered"], (user, backlog_alerts.get(user))
    assert backlog_alerts == paced_alerts
    assert backlog_profiles.keys() == paced_profiles.keys() == expected_counts(events).keys()
    differences = {u: d for u in backlog_profiles if (d := same(backlog_profiles[u], paced_profiles[u]))}
    assert not differences, differences
