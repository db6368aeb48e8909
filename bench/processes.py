"""The worker as a user runs it (``python -m stream worker``), and what /proc says about a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from stream.config import Settings

from bench.inputs import REPO_ROOT


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``Settings()`` in the child equal ``settings``; inherited STREAM_* are dropped."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}, **settings.to_env()}


class WorkerProcess:
    """A ``stream worker`` subprocess with its log in a file; a context manager so it never outlives the run."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WorkerProcess:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream", "worker"], cwd=REPO_ROOT, env=settings_env(self.settings),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"worker exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}")

    def wait_healthy(self, timeout: float = 300.0) -> dict[str, object]:
        """Poll ``GET /health``; loading a real model takes a while, a dead worker fails at once."""
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return json.loads(resp.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise TimeoutError(f"worker not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Graceful SIGTERM, so RocksDB flushes before its size on disk is measured."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def rss_bytes(pid: int) -> int:
    """Resident memory now (VmRSS); VmHWM would include the transient peak of loading the model."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path``, like ``du -s``."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class PeakRss:
    """Samples VmRSS in a thread while the block runs: the peak under load, not since start-up."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval)
