"""Read what a worker published: the newest profile per user, and waiting until counts match."""

from __future__ import annotations

import json
import time

from stream.config import Settings
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic


def latest_profiles(settings: Settings) -> dict[str, dict]:
    """The newest profile per user on the (compacted) profiles topic."""
    latest: dict[str, dict] = {}
    for key, value in read_topic(settings, settings.topic_profiles):
        if value is not None:
            latest[key.decode()] = json.loads(value)
    return latest


def wait_for_counts(
    settings: Settings, expected: dict[str, dict[str, int]], worker: WorkerProcess, timeout: float = 180.0
) -> dict[str, dict]:
    """Poll the profiles topic until every user's counts equal ``expected`` (or fail with the difference)."""
    deadline = time.monotonic() + timeout
    latest: dict[str, dict] = {}
    while time.monotonic() < deadline:
        assert worker.proc is not None and worker.proc.poll() is None, f"worker died:\n{worker.log_tail()}"
        latest = latest_profiles(settings)
        got = {u: {k: v for k, v in p["behaviour"]["counts"].items() if v} for u, p in latest.items()}
        if got == expected:
            return latest
        time.sleep(1.0)
    missing = {u for u in expected if u not in latest}
    wrong = {
        u: (latest[u]["behaviour"]["counts"], expected[u])
        for u in expected
        if u in latest and {k: v for k, v in latest[u]["behaviour"]["counts"].items() if v} != expected[u]
    }
    raise AssertionError(
        f"profiles incomplete after {timeout}s: {len(missing)} users missing, wrong counts {list(wrong.items())[:5]}\n"
        f"{worker.log_tail()}"
    )


def wait_for_watermark(worker: WorkerProcess, watermark_ms: int, timeout: float = 120.0) -> None:
    """Event-time results (windows, churn ticks) are final once the worker's watermark has reached the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, health = worker.http_get("/health")
        if status == 200 and health["watermark"] >= watermark_ms:
            return
        time.sleep(0.5)
    raise AssertionError(f"watermark stuck at {health.get('watermark')} < {watermark_ms}\n{worker.log_tail()}")
