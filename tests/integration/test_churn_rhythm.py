"""Churn alerts on a real broker for a mixed population with known answers (stream/devtools/churn_sim.py).

Heavy and light users, a quarter silent for good, some back after a long pause. A light user's
natural month-long gap must not raise an alert; a heavy user's week of silence must; a returning
user gets `churn_risk` during the pause and `recovered` after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.devtools.churn_sim import DAY_MS, churn_scenario, score_alerts
from stream.devtools.feed import FeedEvent
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic
from stream.kafka.topics import ensure_topics

from .test_end_to_end import expected_counts
from .worker_process import wait_for_counts, wait_for_watermark

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_churn_alerts_follow_each_users_rhythm(broker, settings_factory, tmp_path: Path) -> None:
    scenario = churn_scenario(n_users=100, seed=5)
    # One last event well after the span moves the watermark past its end, so the final day's checks are made.
    clock = FeedEvent("search", {"event_id": "clock", "user_id": "clock", "query": "手机壳",
                                 "ts": scenario.end_ms + 2 * DAY_MS}, None)
    events = [*scenario.events, clock]
    settings = settings_factory(broker.bootstrap, lateness_seconds=3600.0, churn_check_hours=24.0, inactivity_days=14.0)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "logs")
    worker.start()
    try:
        produce_feed(settings, events)
        wait_for_counts(settings, expected_counts(events), worker, timeout=600.0)
        wait_for_watermark(worker, scenario.end_ms + DAY_MS, timeout=300.0)
    finally:
        worker.stop()
    alerts = [json.loads(v) for _, v in read_topic(settings, settings.topic_alerts) if v]
    score = score_alerts(scenario, [a for a in alerts if a["user_id"] != "clock"])
    print(f"\nchurn on the mixed scenario through the broker: {score}")
    assert score.precision >= 0.9 and score.recall >= 0.9, score
    assert score.recovered >= 0.9, score
