"""Run the worker the way a user does (`stream worker` in its own process) and read its outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stream.config import Settings
from stream.kafka_io import read_topic


def settings_env(settings: Settings) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}, **settings.to_env()}


class WorkerProcess:
    """`python -m stream worker` with a log file; kill() is a crash, stop() a graceful shutdown."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"worker-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "worker"], env=settings_env(self.settings), stdout=log, stderr=subprocess.STDOUT
        )

    def wait_healthy(self, timeout: float = 180.0) -> dict:
        """Wait until the worker answers and its tables are recovered (profile lookups work)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.settings.web_port}/health"
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"worker exited early:\n{self.log_tail()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    health = json.loads(resp.read())
                if health["ready"]:
                    return health
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not healthy after {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def log_tail(self, lines: int = 60) -> str:
        path = self.log_dir / f"worker-{self.starts}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def http_get(self, path: str) -> tuple[int, dict]:
        url = f"http://127.0.0.1:{self.settings.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


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
