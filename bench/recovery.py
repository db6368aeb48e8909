"""Table recovery from the changelog: delete a worker's RocksDB directory, restart, compare profiles.

``python -m bench.recovery --users 100000``

1. a local broker and a tiny model in a temporary directory, a worker (``python -m stream worker``);
2. N ``user_attributes`` + N ``order`` events (no text, so the encoder is not the bottleneck), timed
   until every user's profile on the ``profiles`` topic counts both events (ingest throughput);
3. K random users' profiles are read through ``GET /profiles/{user}``;
4. graceful stop, the RocksDB tables (``data_dir/faust``) are moved out of the worker's reach,
   restart: time to ``/health`` ready and to the first successful lookup; the K profiles must be
   identical (``updated_at`` aside), and the whole rebuilt table is compared key by key with the
   one that was removed. The worker's bulk preload (``STREAM_PRELOAD_TABLES``, the default) reads
   the changelog before Faust starts; its figures come from the worker's log;
5. with ``--faust-rebuild``, the same rebuild once more with the preload off, so that Faust's own
   changelog recovery does the work (the figure the preload is compared with);
6. a plain restart (RocksDB kept) for comparison;
7. with ``--standby``, failover: the worker plus a second one with its own data directory (both
   with ``--session-timeout``); once both serve every sampled profile, the first is SIGKILLed
   and the second is timed until it serves them all again (Faust's standby replica, promoted
   after the group notices the dead member).

Prints a Markdown table and writes ``bench/results/recovery.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.inputs import REPO_ROOT
from bench.processes import cpu_seconds, disk_usage
from bench.watcher import ProfileWatcher
from stream.client import http_get
from stream.config import Settings
from stream.devtools.broker import LocalBroker, free_port
from stream.devtools.progress import track
from stream.devtools.tinymodel import build_tiny_bert
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import make_producer, read_topic, topic_offsets
from stream.kafka.topics import ensure_topics

TS = "2026-01-01T00:00:00Z"
EVENTS_PER_USER = 2  # one user_attributes + one order


def progress(message: str) -> None:
    print(f"[recovery] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def user_id(i: int) -> str:
    return f"u{i:06d}"


# --------------------------------------------------------------------------------------------- HTTP


def profile_path(user: str) -> str:
    return f"/profiles/{urllib.parse.quote(user)}"


def comparable(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k != "updated_at"}


# ------------------------------------------------------------------------------------------ worker


class Worker:
    """One ``stream worker`` start: timings from Popen to /health ready and to the first profile lookup."""

    def __init__(self, settings: Settings, log_dir: Path, name: str) -> None:
        self.settings = settings
        self.name = name
        self.process = WorkerProcess(settings, log_dir, name=f"worker-{name}")
        self.started = 0.0
        self.ready_s: float | None = None
        self.first_lookup_s: float | None = None
        self.first_lookup: dict[str, Any] | None = None
        self.lookup_statuses: list[tuple[float, int]] = []  # (seconds since start, status) at each change of answer
        self.first_lookup_before_ready: bool | None = None

    def start(self) -> Worker:
        self.started = time.monotonic()
        self.process.__enter__()
        return self

    def wait_ready(self, probe_user: str, timeout: float = 900.0, interval: float = 0.1) -> None:
        """Poll /health and a lookup of ``probe_user`` together until both succeed."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            self.process.check_alive()
            if self.ready_s is None:
                status, health = http_get(self.settings, "/health", timeout=2)
                if status == 200 and health and health.get("ready"):
                    self.ready_s = time.monotonic() - self.started
            if self.first_lookup_s is None:
                status, body = http_get(self.settings, profile_path(probe_user), timeout=2)
                now = time.monotonic() - self.started
                if status == 200:
                    self.first_lookup_s, self.first_lookup = now, body
                    self.first_lookup_before_ready = self.ready_s is None
                if status and (not self.lookup_statuses or self.lookup_statuses[-1][1] != status):
                    self.lookup_statuses.append((round(now, 3), status))
            if self.ready_s is not None and self.first_lookup_s is not None:
                return
            time.sleep(interval)
        raise TimeoutError(f"worker {self.name} not ready after {timeout:.0f}s:\n{self.process.log_tail()}")

    def stop(self) -> float:
        """Graceful stop (SIGTERM); returns the seconds it took."""
        t = time.monotonic()
        self.process.stop()
        return time.monotonic() - t

# ------------------------------------------------------------------------------------------- inputs


def produce(settings: Settings, n: int) -> tuple[int, float]:
    """N attribute + N order events keyed by user id; returns (events, seconds until all acknowledged)."""
    producer = make_producer(settings, **{"linger.ms": 20, "queue.buffering.max.messages": 500_000,
                                          "queue.buffering.max.kbytes": 512 * 1024})
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    def send(topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                return
            except BufferError:
                producer.poll(0.05)

    start = time.monotonic()
    for i in track(range(n), n, "produce", unit="user"):
        user = user_id(i)
        key = user.encode()
        send(settings.topic_attributes, key, orjson.dumps(
            {"user_id": user, "ts": TS, "age_band": "25-34", "region": "浙江"}))
        send(settings.topic_orders, key, orjson.dumps(
            {"event_id": f"order-{i}", "user_id": user, "ts": TS, "order_id": f"o{i:06d}", "amount": "12.30",
             "currency": "CNY", "items": 1}))
        producer.poll(0)
    left = producer.flush(120)
    if left or errors:
        raise RuntimeError(f"{left} events not flushed, {len(errors)} delivery errors: {errors[:3]}")
    return 2 * n, time.monotonic() - start


# -------------------------------------------------------------------------------------- measurements


def changelog_stats(settings: Settings, broker: LocalBroker, topic: str) -> dict[str, Any]:
    """Records (end - start offsets), distinct keys, and bytes of the topic's log segments on the broker."""
    offsets = topic_offsets(settings, topic)
    keys: set[bytes | None] = set()
    tombstones = 0
    for key, value in read_topic(settings, topic, timeout=300):
        keys.add(key)
        tombstones += value is None
    log_bytes = sum(f.stat().st_size for d in (broker.data_dir / "logs").glob(f"{topic}-*") for f in d.glob("*.log"))
    return {"topic": topic, "partitions": len(offsets), "records": sum(high - low for low, high in offsets.values()),
            "distinct_keys": len(keys), "tombstones": tombstones, "log_bytes": log_bytes}


def read_tables(faust_dir: Path, table: str = "profile-state") -> dict[bytes, bytes]:
    """Every key/value of the table's RocksDB partitions (the worker must be stopped)."""
    from rocksdict import AccessType, Options, Rdict

    out: dict[bytes, bytes] = {}
    paths = sorted(faust_dir.rglob(f"{table}-*.db"))
    if not paths:
        raise FileNotFoundError(f"no {table}-*.db under {faust_dir}")
    for path in paths:
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for k, v in db.items():
                out[bytes(path.name.encode()) + b"/" + k if k == b"__faust\0offset__" else k] = v
        finally:
            db.close()
    return out


def compare_tables(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> dict[str, Any]:
    def split(d: dict[bytes, bytes]) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        offsets = {k: v for k, v in d.items() if b"__faust" in k}
        return {k: v for k, v in d.items() if b"__faust" not in k}, offsets

    b, b_off = split(before)
    a, a_off = split(after)
    missing = sorted(set(b) - set(a))
    extra = sorted(set(a) - set(b))
    differ = sorted(k for k in set(a) & set(b) if orjson.loads(a[k]) != orjson.loads(b[k]))
    return {
        "keys_before": len(b), "keys_after": len(a), "missing": len(missing), "extra": len(extra),
        "different": len(differ), "identical": not (missing or extra or differ),
        "examples": {"missing": [k.decode() for k in missing[:5]], "extra": [k.decode() for k in extra[:5]],
                     "different": [k.decode() for k in differ[:5]]},
        "offsets_before": {k.decode(errors="replace").split("/")[0]: v.decode() for k, v in sorted(b_off.items())},
        "offsets_after": {k.decode(errors="replace").split("/")[0]: v.decode() for k, v in sorted(a_off.items())},
    }


def check_sample(settings: Settings, snapshot: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Look every sampled user up again; count failures and differences (``updated_at`` aside)."""
    failed, different, examples = [], [], []
    t = time.monotonic()
    for user, before in snapshot.items():
        status, body = http_get(settings, profile_path(user))
        if status != 200:
            failed.append((user, status))
            continue
        if comparable(body) != comparable(before):
            different.append(user)
            if len(examples) < 3:
                examples.append({"user": user, "before": comparable(before), "after": comparable(body)})
    seconds = time.monotonic() - t
    return {"checked": len(snapshot), "lookups_failed": len(failed), "failed_examples": failed[:5],
            "different": len(different), "different_examples": examples,
            "identical": not failed and not different, "lookup_ms_mean": 1000 * seconds / max(1, len(snapshot))}


RECOVERY_MARKS = {
    "recovery_start": "[^---Recovery]: Starting...",
    "restore_start": "[^---Recovery]: Restoring state from changelog topics...",
    "restore_done": "[^---Recovery]: Done reading from changelog topics",
    "worker_ready": "[^---Recovery]: Worker ready",
}


def recovery_phases(w: Worker) -> dict[str, float | None]:
    """Seconds from the first log line to Faust's recovery milestones (from the worker's log timestamps)."""
    from datetime import datetime

    def stamp(line: str) -> float | None:
        try:
            return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            return None

    path = w.process.log_path
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    first = next((t for line in lines if line.startswith("[") and (t := stamp(line)) is not None), None)
    out: dict[str, float | None] = {}
    for name, mark in RECOVERY_MARKS.items():
        t = next((stamp(line) for line in lines if mark in line), None)
        out[f"{name}_s"] = None if t is None or first is None else t - first
    if out["restore_start_s"] is not None and out["restore_done_s"] is not None:
        out["changelog_read_s"] = out["restore_done_s"] - out["restore_start_s"]
    return out


PRELOAD_LINE = re.compile(r"table preload: (\d+) changelog records into (\d+) partitions in ([\d.]+) s")


def preload_figures(w: Worker) -> dict[str, float] | None:
    """Records, partitions and seconds of the worker's bulk table preload (None when it read nothing)."""
    path = w.process.log_path
    match = PRELOAD_LINE.search(path.read_text(errors="replace")) if path.exists() else None
    if match is None:
        return None
    records, partitions, seconds = int(match[1]), int(match[2]), float(match[3])
    return {"records": records, "partitions": partitions, "seconds": seconds,
            "records_per_s": records / seconds if seconds > 0 else None}


def restart_result(w: Worker, stop_s: float, sample: dict[str, Any], snapshot: dict[str, dict[str, Any]],
                   probe: str) -> dict[str, Any]:
    first = w.first_lookup
    return {"ready_s": w.ready_s, "first_lookup_s": w.first_lookup_s, "stop_s": stop_s,
            "first_lookup_before_ready": w.first_lookup_before_ready,
            "first_lookup_matches_snapshot": first is not None and comparable(first) == comparable(snapshot[probe]),
            "first_lookup_events_total": None if first is None else first["behaviour"]["events_total"],
            "lookup_statuses": w.lookup_statuses[:20],
            "faust_log_phases": recovery_phases(w), "preload": preload_figures(w),
            "sample_check": sample}


# ------------------------------------------------------------------------------------------------ run


def run(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> dict[str, Any]:
    n, k = args.users, min(args.sample, args.users)
    cache = Path.home() / ".cache" / "stream-profiles"
    broker = LocalBroker(tmp / "broker", cache, port=free_port(), controller_port=free_port(), heap=args.broker_heap)
    progress(f"starting broker on {broker.bootstrap} ({tmp})")
    broker.start()
    stack.callback(broker.stop)
    broker_pid = broker.pid()
    model = build_tiny_bert(tmp / "model")
    settings = Settings(
        broker=broker.bootstrap, app_id=f"recovery-{uuid.uuid4().hex[:8]}", partitions=args.partitions,
        data_dir=tmp / "data", cache_dir=cache, model=str(model), device="cpu", web_port=free_port(),
        idle_partition_seconds=args.idle_seconds,
    )
    ensure_topics(settings)
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    faust_dir = settings.data_dir / "faust"
    changelog = f"{settings.app_id}-profile-state-changelog"
    probe = user_id(n - 1)
    rng = random.Random(args.seed)
    sample_users = sorted({*rng.sample([user_id(i) for i in range(n)], k), probe})  # the probe is compared too
    result: dict[str, Any] = {
        "config": {"users": n, "events": EVENTS_PER_USER * n, "sample": len(sample_users), "partitions": settings.partitions,
                   "batch_size": settings.batch_size or "auto", "commit_interval": settings.commit_interval,
                   "idle_partition_seconds": settings.idle_partition_seconds,
                   "app_id": settings.app_id, "seed": args.seed, "probe_user": probe},
    }

    # 1. cold start, ingest
    progress("cold start (empty state)")
    w = Worker(settings, logs, "1-initial").start()
    stack.callback(w.process.stop)
    w.process.wait_healthy(interval=0.1)
    w.ready_s = time.monotonic() - w.started
    result["cold_start_ready_s"] = w.ready_s
    with ProfileWatcher(settings) as watcher:
        cpu0, bcpu0 = cpu_seconds(w.process.pid), cpu_seconds(broker_pid) if broker_pid else 0.0
        progress(f"producing {EVENTS_PER_USER * n} events for {n} users")
        t0 = time.monotonic()
        events, produce_s = produce(settings, n)
        progress(f"produced {events} events in {produce_s:.1f}s ({events / produce_s:.0f}/s); waiting for profiles")
        expected = {user_id(i): EVENTS_PER_USER for i in range(n)}
        watcher.wait_for(expected, w.process.check_alive, stall_timeout=180.0,
                         report=lambda done, goal: progress(f"  {done}/{goal} events in profiles"))
        ingest_s = max(watcher.appeared(u, c) for u, c in expected.items()) - t0
        result["ingest"] = {
            "events": events, "produce_s": produce_s, "seconds": ingest_s, "events_per_s": events / ingest_s,
            "users_per_s": n / ingest_s, "users_with_profile": watcher.users,
            "profile_messages": watcher.messages, "profile_bytes_mean": sum(watcher.sizes) / max(1, watcher.messages),
            "worker_cpu_s": cpu_seconds(w.process.pid) - cpu0,
            "broker_cpu_s": (cpu_seconds(broker_pid) - bcpu0) if broker_pid else None,
        }
    progress(f"ingest: {events} events in {ingest_s:.1f}s = {events / ingest_s:.0f} events/s")

    # 2. snapshot K profiles
    snapshot: dict[str, dict[str, Any]] = {}
    for user in sample_users:
        status, body = http_get(settings, profile_path(user))
        if status != 200:
            raise RuntimeError(f"snapshot lookup of {user} failed with {status}: {body}")
        snapshot[user] = body
    result["snapshot_example"] = comparable(snapshot[sample_users[0]])
    time.sleep(settings.commit_interval * 2)  # let the last offsets commit before stopping
    result["initial_stop_s"] = w.stop()
    result["rocksdb_before_bytes"] = disk_usage(faust_dir)
    result["changelog"] = changelog_stats(settings, broker, changelog)
    progress(f"changelog: {result['changelog']}")

    # 3. delete RocksDB (moved aside so the rebuilt table can be compared with it), restart
    removed = tmp / "faust-removed"
    shutil.move(str(faust_dir), str(removed))
    progress(f"RocksDB ({result['rocksdb_before_bytes'] / 1e6:.1f} MB) removed from {faust_dir}; restarting")
    w = Worker(settings, logs, "2-rebuild").start()
    stack.callback(w.process.stop)
    w.wait_ready(probe_user=probe)
    progress(f"rebuild: ready after {w.ready_s:.2f}s, first lookup after {w.first_lookup_s:.2f}s")
    sample = check_sample(settings, snapshot)
    rebuild = restart_result(w, w.stop(), sample, snapshot, probe)
    rebuild["rocksdb_after_bytes"] = disk_usage(faust_dir)
    progress("comparing the rebuilt RocksDB table with the removed one, key by key")
    before = read_tables(removed)
    rebuild["full_table_compare"] = compare_tables(before, read_tables(faust_dir))
    values = [v for k, v in before.items() if b"__faust" not in k]
    result["state_value_bytes_mean"] = sum(map(len, values)) / max(1, len(values))
    result["rebuild"] = rebuild
    shutil.rmtree(removed, ignore_errors=True)

    if args.faust_rebuild:
        progress("rebuild again with the preload off (Faust's own changelog recovery)")
        kept = tmp / "faust-preloaded"
        shutil.move(str(faust_dir), str(kept))
        w = Worker(settings.model_copy(update={"preload_tables": False}), logs, "2b-faust-rebuild").start()
        stack.callback(w.process.stop)
        w.wait_ready(probe_user=probe)
        progress(f"Faust rebuild: ready after {w.ready_s:.2f}s")
        sample = check_sample(settings, snapshot)
        result["faust_rebuild"] = restart_result(w, w.stop(), sample, snapshot, probe)
        shutil.rmtree(faust_dir, ignore_errors=True)
        shutil.move(str(kept), str(faust_dir))

    # 4. plain restart, RocksDB kept
    progress("plain restart (RocksDB kept)")
    w = Worker(settings, logs, "3-plain").start()
    stack.callback(w.process.stop)
    w.wait_ready(probe_user=probe)
    sample = check_sample(settings, snapshot)
    result["plain_restart"] = restart_result(w, w.stop(), sample, snapshot, probe)
    result["plain_restart"]["rocksdb_bytes"] = disk_usage(faust_dir)
    if args.standby:
        result["standby"] = standby_takeover(settings, tmp, logs, stack, snapshot, probe, args.session_timeout)
    return result


def serving(settings: Settings, snapshot: dict[str, dict[str, Any]]) -> bool:
    """Whether the worker at ``settings.web_port`` answers every sampled profile as snapshotted."""
    for user, before in snapshot.items():
        status, body = http_get(settings, profile_path(user), timeout=2)
        if status != 200 or comparable(body) != comparable(before):
            return False
    return True


def wait_serving(settings: Settings, snapshot: dict[str, dict[str, Any]], alive: Any, timeout: float) -> float:
    """Seconds until ``serving`` holds (polled every 0.2 s)."""
    t = time.monotonic()
    while not serving(settings, snapshot):
        alive()
        if time.monotonic() - t > timeout:
            raise TimeoutError(f"profiles not served after {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - t


def standby_takeover(settings: Settings, tmp: Path, logs: Path, stack: ExitStack, snapshot: dict[str, dict[str, Any]],
                     probe: str, session_timeout: float) -> dict[str, Any]:
    """Two workers, the first SIGKILLed: seconds until the second serves every sampled profile alone."""
    sa = settings.model_copy(update={"session_timeout": session_timeout})
    sb = sa.model_copy(update={"data_dir": tmp / "data-b", "web_port": free_port()})
    progress(f"standby: two workers (session timeout {session_timeout:.0f}s)")
    a = Worker(sa, logs, "4-standby-a").start()
    stack.callback(a.process.stop)
    a.wait_ready(probe_user=probe)
    b = Worker(sb, logs, "4-standby-b").start()
    stack.callback(b.process.stop)
    b.wait_ready(probe_user=probe)
    both_s = wait_serving(sb, snapshot, b.process.check_alive, 600)
    time.sleep(2 * session_timeout)  # let the group settle and the standby catch up
    if not serving(sb, snapshot):
        raise RuntimeError("the second worker stopped serving before the failover")
    progress("standby: SIGKILL the first worker")
    a.process.kill()
    takeover_s = wait_serving(sb, snapshot, b.process.check_alive, 600)
    progress(f"standby: the second worker serves everything {takeover_s:.2f}s after the kill")
    out = {"session_timeout_s": session_timeout, "second_ready_s": b.ready_s, "second_serving_all_s": both_s,
           "takeover_s": takeover_s, "second_preload": preload_figures(b),
           "second_log_tail_recovery": [line for line in b.process.log_path.read_text(errors="replace").splitlines()
                                        if "Recovery]: Done reading" in line or "Restoring state" in line][-4:]}
    b.stop()
    return out


def fmt(v: float | None, unit: str = "s") -> str:
    return "—" if v is None else f"{v:.2f} {unit}"


def first_lookup(x: dict[str, Any]) -> str:
    text = fmt(x["first_lookup_s"])
    if x["first_lookup_before_ready"]:
        text += " (before ready)"
    if not x["first_lookup_matches_snapshot"]:
        text += f" **— answer differed from the snapshot (events_total={x['first_lookup_events_total']})**"
    return text


def replay(x: dict[str, Any], cl: dict[str, Any]) -> str:
    phases = x["faust_log_phases"]
    s = phases.get("changelog_read_s")
    if s is None:
        return "nothing to read (offsets in RocksDB are current)" if phases.get("worker_ready_s") is not None else "—"
    return f"{s:.2f} s" + (f" ({cl['records'] / s:,.0f} records/s)" if s > 0.5 else "")


def preloaded(x: dict[str, Any]) -> str:
    p = x.get("preload")
    if p is None:
        return "nothing read"
    return f"{p['records']:,} records in {p['seconds']:.2f} s ({p['records_per_s']:,.0f} records/s)"


def markdown(r: dict[str, Any]) -> str:
    c, ing, cl, rb, pr = r["config"], r["ingest"], r["changelog"], r["rebuild"], r["plain_restart"]
    full = rb["full_table_compare"]
    rows = [
        ("users / events", f"{c['users']:,} / {c['events']:,} (attributes + order per user, {c['partitions']} partitions)"),
        ("ingest (produce → all profiles)", f"{ing['seconds']:.1f} s = **{ing['events_per_s']:,.0f} events/s** "
                                            f"({ing['users_per_s']:,.0f} users/s; {ing['worker_cpu_s'] * 1e6 / ing['events']:,.0f} µs"
                                            f" worker CPU per event; idle partitions after {c['idle_partition_seconds']:g} s)"),
        ("changelog", f"{cl['records']:,} records, {cl['distinct_keys']:,} keys, {cl['log_bytes'] / 1e6:.1f} MB"),
        ("profile message / table value per user (mean)",
         f"{ing['profile_bytes_mean']:,.0f} B / {r['state_value_bytes_mean']:,.0f} B (no text: no interest vector)"),
        ("RocksDB before / rebuilt", f"{r['rocksdb_before_bytes'] / 1e6:.1f} MB / {rb['rocksdb_after_bytes'] / 1e6:.1f} MB"),
        ("cold start, empty state → ready", fmt(r["cold_start_ready_s"])),
        ("**rebuild (RocksDB deleted) → ready**", f"**{fmt(rb['ready_s'])}**"),
        ("rebuild: bulk preload before Faust starts (worker log)", preloaded(rb)),
        ("rebuild → first profile lookup (probe = last user)", first_lookup(rb)),
        ("rebuild: process start → Faust starting (imports, model load, dead-letter scan)",
         fmt(None if rb["faust_log_phases"]["worker_ready_s"] is None
             else rb["ready_s"] - rb["faust_log_phases"]["worker_ready_s"], "s (approx.)")),
        ("rebuild: reading the changelog (Faust log)", replay(rb, cl)),
        *([] if (fr := r.get("faust_rebuild")) is None else [
            ("rebuild with the preload off → ready (Faust's own recovery)", fmt(fr["ready_s"])),
            ("preload off: reading the changelog (Faust log)", replay(fr, cl)),
            ("preload off: sampled profiles", "identical" if fr["sample_check"]["identical"] else
             f"**{fr['sample_check']['different']} differ, {fr['sample_check']['lookups_failed']} lookups failed**"),
        ]),
        ("plain restart: reading the changelog (Faust log)", replay(pr, cl)),
        ("plain restart (RocksDB kept) → ready", fmt(pr["ready_s"])),
        *([] if (sb := r.get("standby")) is None else [
            (f"**failover: SIGKILL one of two workers → the other serves all sampled profiles** "
             f"(session timeout {sb['session_timeout_s']:.0f} s)", f"**{fmt(sb['takeover_s'])}**"),
        ]),
        ("plain restart → first profile lookup", first_lookup(pr)),
        ("graceful stop", f"{r['initial_stop_s']:.2f} s (after ingest), {rb['stop_s']:.2f} s (after rebuild)"),
        (f"{c['sample']} sampled profiles after rebuild",
         "identical" if rb["sample_check"]["identical"] else
         f"**{rb['sample_check']['different']} differ, {rb['sample_check']['lookups_failed']} lookups failed**"),
        (f"{c['sample']} sampled profiles after plain restart",
         "identical" if pr["sample_check"]["identical"] else
         f"**{pr['sample_check']['different']} differ, {pr['sample_check']['lookups_failed']} lookups failed**"),
        ("full table, rebuilt vs deleted", f"{full['keys_after']:,}/{full['keys_before']:,} keys, "
                                           + ("all values identical" if full["identical"] else
                                              f"**{full['missing']} missing, {full['extra']} extra, "
                                              f"{full['different']} different**")),
    ]
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=200, help="profiles snapshotted and compared over HTTP")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--broker-heap", default="1g")
    ap.add_argument("--standby", action="store_true", help="also time a failover to a second worker (SIGKILL)")
    ap.add_argument("--session-timeout", type=float, default=6.0,
                    help="STREAM_SESSION_TIMEOUT of the two workers in the failover (a crash is noticed after it)")
    ap.add_argument("--faust-rebuild", action="store_true",
                    help="also rebuild with the bulk preload off (Faust's own recovery), for comparison")
    ap.add_argument("--idle-seconds", type=float, default=Settings.model_fields["idle_partition_seconds"].default,
                    help="STREAM_IDLE_PARTITION_SECONDS: the input topics without records (reviews, searches, ...) hold"
                         " every update back this long before they count as idle, which the ingest time includes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, broker, tables)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "recovery.json")
    args = ap.parse_args(argv)
    if args.users < 1:
        ap.error("--users must be at least 1")
    t = time.monotonic()
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="stream-recovery-"))
        if not args.keep:
            stack.callback(shutil.rmtree, tmp, True)
        else:
            progress(f"keeping {tmp}")
        result = run(args, tmp, stack)
    result["total_wall_s"] = time.monotonic() - t
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown(result))
    progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
