"""A real single-node Apache Kafka broker (KRaft) from Maven Central jars, no Docker.

The jars are resolved once by Maven from the pom shipped in ``stream/resources`` and cached
outside the checkout; each data directory is formatted once and reused across restarts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.7.1"

_LOG4J2_PROPERTIES = """\
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
"""


class BrokerError(RuntimeError):
    """The local broker could not be resolved, formatted or started."""


def kafka_jars(cache_dir: Path) -> Path:
    """Directory with the broker's runtime jars, resolving them with Maven on first use."""
    pom = resources.files("stream").joinpath("resources/kafka-pom.xml").read_bytes()
    libs = cache_dir / f"kafka-libs-{hashlib.sha256(pom).hexdigest()[:12]}"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is needed once to resolve the Kafka jars; install it (e.g. apt-get install maven)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        (Path(tmp) / "pom.xml").write_bytes(pom)
        out = Path(tmp) / "libs"
        proc = subprocess.run(
            ["mvn", "-B", "-q", f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
             f"-DoutputDirectory={out}", "-DincludeScope=runtime"],
            cwd=tmp, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise BrokerError(f"Maven could not resolve the Kafka jars:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        os.replace(out, libs)
    return libs


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalBroker:
    """One KRaft broker+controller on 127.0.0.1 whose state lives in ``data_dir``."""

    data_dir: Path
    cache_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "1g"
    host: str = "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    def pid(self) -> int | None:
        """Pid of the running broker process, or None."""
        try:
            pid = int(self._pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None and port_open(self.host, self.port)

    def _write_config(self) -> Path:
        props = self.data_dir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.cleaner.backoff.ms": "1000",
        }
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES.format(log=self.log_file))
        return props

    def start(self, timeout: float = 120.0) -> None:
        """Start (formatting on first use) and return once the client port accepts connections."""
        if self.running():
            return
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is taken by another process; set STREAM_BROKER_PORT")
        libs = kafka_jars(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        classpath = f"{libs}/*"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            proc = subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone",
                 "-t", str(uuid.uuid4().hex[:22]), "-c", str(props)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise BrokerError(f"formatting {self.data_dir} failed:\n{proc.stdout}{proc.stderr}")
        with open(self.data_dir / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                ["java", "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC",
                 f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                 "-cp", classpath, "kafka.Kafka", str(props)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self._pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"broker exited with {proc.returncode}; see {self.log_file}:\n{self._tail()}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.2)
        self.kill()
        raise BrokerError(f"broker not ready after {timeout:.0f}s; see {self.log_file}:\n{self._tail()}")

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful stop (SIGTERM, as kafka-server-stop.sh does); SIGKILL if it hangs."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash the broker (SIGKILL), for fault-injection tests."""
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)

    def _tail(self, lines: int = 30) -> str:
        for f in (self.log_file, self.data_dir / "stdout.log"):
            if f.exists() and f.stat().st_size:
                return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie child of ours counts as gone)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
