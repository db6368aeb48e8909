"""The downstream examples, run as a user runs them, against what a real worker published."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from stream.core.events import parse_ts
from stream.devtools.feed import FeedEvent, demo_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic
from stream.kafka.topics import ensure_topics

from .test_end_to_end import expected_counts
from .worker_process import wait_for_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).parents[2] / "examples"
DAY_MS = 86_400_000


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args, "--idle-timeout", "8"],
        capture_output=True, text=True, timeout=180, check=True,
    )


def wait_for_alert(settings, worker: WorkerProcess, timeout: float = 120.0) -> list[dict]:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check_alive()
        found = [json.loads(v) for _, v in read_topic(settings, settings.topic_alerts) if v]
        if found:
            return found
        time.sleep(1.0)
    raise AssertionError(f"no churn alert after {timeout}s\n{worker.log_tail()}")


def test_examples_print_what_the_worker_published(broker, settings_factory, tmp_path: Path) -> None:
    settings = settings_factory(broker.bootstrap)
    events = list(demo_feed(12, 240, seed=5, silent_fraction=0.34, gap_ms=120 * DAY_MS // 240))
    end = max(parse_ts(fe.event["ts"]) for fe in events)
    ensure_topics(settings)
    with WorkerProcess(settings, tmp_path) as worker:
        produce_feed(settings, events)
        wait_for_counts(settings, expected_counts(events), worker)
        alerts = wait_for_alert(settings, worker)
        forgotten = sorted({fe.event["user_id"] for fe in events})[0]
        produce_feed(settings, [FeedEvent("forget", {"user_id": forgotten, "ts": end}, None)])
        deadline = time.monotonic() + 60
        while not any(k == forgotten.encode() and v is None for k, v in read_topic(settings, settings.topic_profiles)):
            assert time.monotonic() < deadline, f"no tombstone for {forgotten}\n{worker.log_tail()}"
            time.sleep(1.0)
    garbage = Producer({"bootstrap.servers": settings.broker})
    garbage.produce(settings.topic_profiles, key=b"u-bad", value=b'{"user_id": "u-bad"}')  # not a profile
    garbage.produce(settings.topic_alerts, key=b"u-bad", value=b"not json")
    assert garbage.flush(30) == 0

    published = [v for _, v in read_topic(settings, settings.topic_profiles)]
    out = run_example("profiles_consumer.py", "--broker", settings.broker, "--topic", settings.topic_profiles)
    lines = out.stdout.splitlines()
    assert sum(line.startswith("PROFILE ") for line in lines) == sum(v is not None for v in published) - 1
    assert f"FORGOTTEN {forgotten}: delete every copy of this user's data" in lines
    users = {fe.event["user_id"] for fe in events}
    assert {line.split()[1] for line in lines if line.startswith("PROFILE ")} == users
    assert out.stderr.count("INVALID ") == 1  # the garbage record is reported and skipped, not fatal

    out = run_example("churn_alert_subscriber.py", "--broker", settings.broker, "--topic", settings.topic_alerts)
    lines = out.stdout.splitlines()
    assert sorted(line.split(" level=")[0] for line in lines) == sorted(
        f"{a['type'].upper()} {a['user_id']} score={a['score']}" for a in alerts
    )
    assert any("-> start win-back offer" in line for line in lines)
    assert out.stderr.count("INVALID ") == 1
