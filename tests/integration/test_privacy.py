"""Privacy end to end: no personal data in outputs or state, pseudonymous ids, forgetting that survives recovery."""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from stream.core.events import parse_ts
from stream.core.privacy import pseudonym
from stream.devtools.feed import FeedEvent, demo_feed
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import read_topic
from stream.kafka.topics import ensure_topics

from .test_end_to_end import expected_counts
from .worker_process import latest_profiles, wait_for_counts, wait_for_watermark

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "test-pseudonym-key"
TOKEN = "test-api-token"
PII = ["13812345678", "139-1234-5678", "zhang.san@example.com", "110101199003074514", "4111111111111111"]
UNIQUE_WORD = "鲲鹏"


def seeded_events() -> list[FeedEvent]:
    events = list(demo_feed(20, 240, seed=5))
    pii_reviews = [
        f"客服电话{PII[0]}，有问题打{PII[1]}或者发邮件到{PII[2]}，身份证{PII[3]}，卡号{PII[4]}，东西不错",
        f"联系我 {PII[2]} 手机 {PII[0]}",
    ]
    for i, text in enumerate(pii_reviews * 5):
        events.append(FeedEvent("review", {"event_id": f"pii-{i}", "user_id": f"u{1 + i % 20:04d}",
                                           "ts": "2026-01-01T12:00:00Z", "item_id": "sku-1", "text": text}, None))
    for i in range(16):  # three writers: a keyword; forgetting u0002 leaves two, and it must disappear
        user = "u0002" if i < 10 else ("u0004", "u0005")[i % 2]
        events.append(FeedEvent("review", {"event_id": f"cat-{i}", "user_id": user, "ts": "2026-01-01T13:00:00Z",
                                           "item_id": "sku-2", "text": f"{UNIQUE_WORD}{UNIQUE_WORD}{UNIQUE_WORD}"}, None))
    events.append(FeedEvent("user_attributes", {"user_id": "u0003", "ts": "2026-01-01T14:00:00Z",
                                                "region": f"电话{PII[0]}", "occupation": PII[2]}, None))
    events.append(FeedEvent("search", {"event_id": "pii-id", "user_id": PII[2], "ts": "2026-01-01T15:00:00Z",
                                       "query": f"{PII[0]} 手机壳"}, None))
    return events


def status_without_token(worker: WorkerProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.settings.web_port}{path}", timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def output_bytes(settings) -> bytes:  # noqa: ANN001
    """Every record of every topic the service writes (outputs, internal, changelogs), concatenated."""
    inputs = set(settings.kind_of_topic)
    topics = AdminClient({"bootstrap.servers": settings.broker}).list_topics(timeout=10).topics
    ours = [t for t in topics if t not in inputs and (t.startswith(settings.app_id) or t in {
        settings.topic_profiles, settings.topic_alerts, settings.topic_updates, settings.topic_dead_letters})]
    assert any(t.endswith("profile-state-changelog") for t in ours)
    chunks = []
    for topic in ours:
        for key, value in read_topic(settings, topic):
            chunks += [key or b"", value or b""]
    return b"\n".join(chunks)


def state_bytes(data_dir: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())


def test_privacy_end_to_end(broker, settings_factory, tmp_path: Path) -> None:
    settings = settings_factory(broker.bootstrap, pseudonym_key=KEY, api_token=TOKEN)
    ensure_topics(settings)
    events = seeded_events()
    expected = {pseudonym(u, KEY.encode()): c for u, c in expected_counts(events).items()}
    worker = WorkerProcess(settings, tmp_path / "logs")
    worker.start()
    try:
        produce_feed(settings, events)
        wait_for_counts(settings, expected, worker)

        assert status_without_token(worker, "/profiles/x") == 401
        status, body = worker.http_get("/users/u0001/profile")
        assert status == 200 and body["user_id"] == pseudonym("u0001", KEY.encode())
        assert body["basic"]["region"] is None or PII[0] not in body["basic"]["region"]
        status, clusters = worker.http_get("/clusters")
        assert any(UNIQUE_WORD in c["keywords"] for c in clusters["clusters"]), clusters

        everything = output_bytes(settings) + state_bytes(settings.data_dir)
        for secret in PII:
            assert secret.encode() not in everything, f"{secret} leaked"
        raw_ids = [f"u{i:04d}".encode() for i in range(1, 21)]
        outputs = output_bytes(settings)
        dead = b"".join(v or b"" for _, v in read_topic(settings, settings.topic_dead_letters))
        assert not any(r in outputs.replace(dead, b"") for r in raw_ids), "raw user ids in outputs"

        forgotten = pseudonym("u0002", KEY.encode())
        produce_feed(settings, [FeedEvent("forget", {"user_id": "u0002", "ts": "2026-06-01T00:00:00Z"}, None)])
        for _ in range(60):
            status, body = worker.http_get(f"/profiles/{forgotten}")
            if status == 404:
                break
            time.sleep(1)
        assert status == 404 and body == worker.http_get("/profiles/p_never_seen")[1], "forgotten must look unknown"
        tombstones = [v for k, v in read_topic(settings, settings.topic_profiles) if k == forgotten.encode()]
        assert tombstones[-1] is None, "no tombstone on the profiles topic"
        # A review from before the request that arrives late stays forgotten; one after it starts a new profile.
        late = {"user_id": "u0002", "item_id": "sku-2", "text": "迟到的评论"}
        produce_feed(settings, [FeedEvent("review", {**late, "event_id": "late", "ts": "2026-05-31T00:00:00Z"}, None),
                                FeedEvent("review", {**late, "event_id": "back", "ts": "2026-06-02T00:00:00Z"}, None)])
        for _ in range(60):
            status, body = worker.http_get(f"/profiles/{forgotten}")
            if status == 200:
                break
            time.sleep(1)
        assert status == 200 and body["behaviour"]["counts"]["review"] == 1, body
        status, clusters = worker.http_get("/clusters")
        assert not any(UNIQUE_WORD in c["keywords"] for c in clusters["clusters"]), clusters

        # Views are computed as of the watermark: capture them only once it has passed the newest event
        # (the review at 06-02), or recency read before and after the rebuild can differ by that last day.
        newest = parse_ts("2026-06-02T00:00:00Z") - int(settings.lateness_seconds * 1000)
        wait_for_watermark(worker, newest)
        kept = {u: worker.http_get(f"/profiles/{u}")[1] for u in latest_profiles(settings) if u != forgotten}
        assert len(kept) == 20
        worker.kill()
        shutil.rmtree(settings.data_dir / "faust")  # lose local RocksDB: state must come back from the changelog
        worker.start()
        worker.wait_healthy()
        # A kill can come before the checkpoint that saves the watermark's last move; the restarted worker
        # makes the same move again from the same partition state once they count as idle.
        wait_for_watermark(worker, newest)
        for user, profile in kept.items():
            status, body = worker.http_get(f"/profiles/{user}")
            assert status == 200, (user, status, body)
            for section in ("behaviour", "consumption", "basic", "sentiment"):
                assert body[section] == profile[section], (user, section)
        status, body = worker.http_get(f"/profiles/{forgotten}")
        assert status == 200 and body["behaviour"]["counts"]["review"] == 1, "history before the forget came back"
    finally:
        worker.stop()
