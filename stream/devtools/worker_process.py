"""A worker in its own process, started the way a user starts it (``python -m stream worker``).

Used by ``stream demo``, the end-to-end tests and the benchmarks, so that all of them run
the real thing: one process, its own event loop, its log in a file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stream.client import http_get
from stream.config import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment in which ``Settings()`` equals ``settings``; inherited STREAM_* variables are dropped."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}, **settings.to_env()}


class WorkerProcess:
    """``stream worker`` as a subprocess: ``kill()`` is a crash, ``stop()`` a graceful shutdown.

    Each start writes ``<log_dir>/<name>-<n>.log``; as a context manager it never outlives the block.
    """

    def __init__(self, settings: Settings, log_dir: Path, name: str = "worker") -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}-{self.starts}.log"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc.pid

    def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream", "worker"], env=settings_env(self.settings),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"worker exited ({code}):\n{self.log_tail()}")

    def wait_healthy(self, timeout: float = 300.0, interval: float = 0.5) -> dict[str, Any]:
        """Wait until the worker answers and its tables are recovered; a dead worker fails at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            status, health = self.http_get("/health", timeout=2)
            if status == 200 and health.get("ready"):
                return health
            time.sleep(interval)
        raise TimeoutError(f"worker not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def http_get(self, path: str, timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
        return http_get(self.settings, path, timeout)

    def kill(self) -> None:
        """Crash (SIGKILL): no shutdown hooks, no final commit."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """Graceful SIGTERM (RocksDB flushed, offsets committed); SIGKILL if it hangs."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
