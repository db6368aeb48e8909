"""Nothing lost, nothing double-counted: SIGKILLed workers, a bounced broker, malformed input.

In the spirit of Kafka Streams' system tests: produce a known input, inject failures,
then check that every user's profile is an exact function of the input (per-type
counts and order sums) and that every malformed record is dead-lettered exactly once.
The verifier prints one line: ALL-RECORDS-DELIVERED, or what is missing or extra.
Set STREAM_FAULT_RUNS=N to repeat the whole scenario N times with different seeds.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from stream.core.profile import DAY_MS
from stream.devtools.broker import LocalBroker, free_port
from stream.devtools.feed import FeedEvent, demo_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import make_producer, read_topic
from stream.kafka.topics import ensure_topics

from .worker_process import latest_profiles

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = int(os.environ.get("STREAM_FAULT_RUNS", "1"))


def malformed(rng: random.Random, users: list[str]) -> list[tuple[str, bytes | None, bytes | None]]:
    """(kind, key, value) of records every worker must dead-letter, one per defect and a few random ones."""
    good = {"event_id": "x", "user_id": users[0], "ts": "2026-01-02T00:00:00Z", "item_id": "i", "text": "好"}
    defects: list[tuple[str, bytes | None]] = [
        ("review", b"{not json"),
        ("search", b"[1, 2, 3]"),
        ("review", json.dumps({**good, "ts": "2026-13-45T99:00:00Z"}).encode()),
        ("review", json.dumps({**good, "ts": "2026-01-02T00:00:00"}).encode()),
        ("review", json.dumps({**good, "rating": 9}).encode()),
        ("review", json.dumps({k: v for k, v in good.items() if k != "user_id"}).encode()),
        ("review", json.dumps({**good, "text": "太长" * 50_001}).encode()),  # over STREAM_REJECT_TEXT_CHARS
        ("review", json.dumps({**good, "ts": "9999-12-31T00:00:00Z"}).encode()),  # event time in the future
        ("review", json.dumps(good)[:-1].encode() + b', "user_id": "u-other"}'),  # duplicate key
        ("search", b"\xff\xfe\xfd not utf-8"),
        ("order", json.dumps({"event_id": "o", "user_id": users[1], "ts": 1767225600000, "order_id": "o", "amount": "1.00",
                              "currency": "USD", "items": 1}).encode()),
        ("order", json.dumps({"event_id": "o", "user_id": users[1], "ts": 1, "order_id": "o", "amount": "-5",
                              "currency": "CNY", "items": 1}).encode()),
        ("user_attributes", json.dumps({"user_id": users[2], "ts": 1, "gender": "unknown"}).encode()),
        ("search", None),
        ("review", json.dumps({**good, "user_id": ""}).encode()),
    ]
    out = [(kind, rng.choice(users).encode(), value) for kind, value in defects]
    for _ in range(20):
        kind, value = rng.choice(defects)
        out.append((kind, rng.choice(users).encode(), value))
    return out


def produce_malformed(settings, records) -> set[str]:  # noqa: ANN001
    """Produce raw records and return their positions ("topic/partition/offset")."""
    producer = make_producer(settings)
    positions: set[str] = set()

    def delivered(err, msg) -> None:  # noqa: ANN001
        assert err is None, err
        positions.add(f"{msg.topic()}/{msg.partition()}/{msg.offset()}")

    for kind, key, value in records:
        producer.produce(settings.topic_of_kind[kind], key=key, value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return positions


def verify(settings, events: list[FeedEvent], dead_expected: set[str]) -> tuple[bool, str]:  # noqa: ANN001
    """Compare the final profiles and dead letters with the input; one summary line."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    money: dict[str, Decimal] = defaultdict(Decimal)
    for fe in events:
        counts[fe.event["user_id"]][fe.kind] += 1
        if fe.kind == "order":
            money[fe.event["user_id"]] += Decimal(fe.event["amount"])
    profiles = latest_profiles(settings)
    missing = extra = 0
    for user, want in counts.items():
        got = profiles.get(user, {}).get("behaviour", {}).get("counts", {})
        for kind in ("review", "search", "order", "user_attributes"):
            diff = got.get(kind, 0) - want.get(kind, 0)
            missing += max(0, -diff)
            extra += max(0, diff)
        spent = Decimal(profiles.get(user, {}).get("consumption", {}).get("monetary_total", "0"))
        assert spent == money[user] or missing or extra, f"{user}: order sum {spent} != {money[user]}"
    dead_seen = Counter(k.decode() for k, _ in read_topic(settings, settings.topic_dead_letters))
    dead_missing = dead_expected - set(dead_seen)
    dead_extra = set(dead_seen) - dead_expected
    dead_twice = {k for k, n in dead_seen.items() if n > 1}
    applied = sum(sum(p["behaviour"]["counts"].values()) for p in profiles.values())
    stats = (f"events={len(events)} applied={applied} lost={missing} double_counted={extra} "
             f"dead_letters={sum(dead_seen.values())}/{len(dead_expected)} dead_missing={len(dead_missing)} "
             f"dead_unexpected={len(dead_extra)} dead_duplicated={len(dead_twice)}")
    if missing:
        return False, f"PROCESSED-LESS-THAN-GENERATED {stats}"
    if extra:
        return False, f"PROCESSED-MORE-THAN-GENERATED {stats}"
    if dead_missing or dead_extra or dead_twice:
        return False, f"DEAD-LETTERS-MISMATCH {stats}"
    return True, f"ALL-RECORDS-DELIVERED {stats}"


def wait_until_verified(settings, events, dead, worker: WorkerProcess, timeout: float = 300.0) -> str:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        if worker.proc is not None and worker.proc.poll() is not None:
            worker.start()  # a supervisor (systemd, Kubernetes) restarts a worker that exits
        ok, line = verify(settings, events, dead)
        if ok:
            return line
        time.sleep(3)
    raise AssertionError(f"{line}\n{worker.log_tail()}")


@pytest.mark.parametrize("run", range(RUNS))
def test_kills_and_broker_bounce_lose_and_duplicate_nothing(run: int, settings_factory, tmp_path: Path) -> None:
    seed = 100 + run
    rng = random.Random(seed)
    broker = LocalBroker(tmp_path / "broker", Path.home() / ".cache" / "stream-profiles", port=free_port(),
                         controller_port=free_port())
    broker.start()
    settings = settings_factory(broker.bootstrap, commit_interval=0.5)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "logs")
    events = list(demo_feed(60, 3000, seed=seed, gap_ms=90 * DAY_MS // 3000))
    users = sorted({fe.event["user_id"] for fe in events})
    bad = malformed(rng, users)
    chunks = [events[i::6] for i in range(6)]
    dead: set[str] = set()
    kills = 0
    try:
        worker.start()
        for i, chunk in enumerate(chunks):
            produce_feed(settings, chunk)
            dead |= produce_malformed(settings, bad[i::6])
            time.sleep(rng.uniform(1.0, 6.0))
            if i == 3:
                broker.kill()
                time.sleep(rng.uniform(1.0, 3.0))
                broker.start()
            if i < 5:
                worker.kill()
                kills += 1
                worker.start()
        line = wait_until_verified(settings, events, dead, worker)
        print(f"\nrun {run} (seed {seed}): worker kills={kills} restarts={worker.starts - 1} broker bounces=1: {line}")
    finally:
        worker.stop()
        broker.stop()
