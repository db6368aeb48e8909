"""Forget has a time: everything a user did up to the request stays gone, however late it arrives."""

from __future__ import annotations

import json

import pytest

from stream.core.clustering import OnlineClusterer
from stream.core.erasure import Erasures
from stream.core.events import Limits
from stream.core.messages import make_update
from stream.core.profile import Rules
from stream.core.stage2 import ProfileStage
from stream.worker.pipeline import BatchProcessor, Record

from .test_pipeline import TS, FakeEncoder

K, WARMUP = 3, 12
TOPICS = {"reviews": "review", "forget-requests": "forget"}


def review(offset: int, user: str, ts: int, text: str) -> Record:
    body = {"event_id": f"r{offset}", "user_id": user, "ts": ts, "item_id": "sku", "text": text}
    return Record("reviews", 0, offset, user.encode(), json.dumps(body, ensure_ascii=False).encode())


def forget(offset: int, user: str, ts: int) -> Record:
    return Record("forget-requests", 0, offset, user.encode(), json.dumps({"user_id": user, "ts": ts}).encode())


@pytest.fixture
def encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def processor(encoder: FakeEncoder) -> BatchProcessor:
    return BatchProcessor(encoder, OnlineClusterer(k=K, warmup=WARMUP, seed=0), kind_of_topic=TOPICS, prefixes={},
                          limits=Limits(max_text_chars=500, reject_text_chars=1000, max_future_ms=300_000))


def others(start: int, n: int) -> list[Record]:
    return [review(start + i, f"other-{i % 4}", TS + i, f"耳机音质不错 第{i}条") for i in range(n)]


def test_texts_held_for_the_warm_start_are_dropped_by_a_later_forget(processor: BatchProcessor) -> None:
    held = processor.process([review(0, "gone", TS, "独一无二的词汇甲"), review(1, "gone", TS + 5, "独一无二的词汇甲")])
    assert held.held == 2
    after = processor.process([forget(0, "gone", TS + 10)])
    assert after.held == 0 and not after.held_positions, "covered texts must be released for acking"
    released = processor.process(others(2, WARMUP))
    assert processor.clusterer.fitted
    assert all(u["user_id"] != "gone" for u in released.updates if u["kind"] == "review")
    words = [w for counts in processor.owner.terms.counts.values() for w in counts]
    assert words and not any("独一无二" in w for w in words)


def test_late_texts_from_before_the_forget_are_never_encoded_nor_published(
    processor: BatchProcessor, encoder: FakeEncoder
) -> None:
    processor.process(others(0, WARMUP))
    processor.process([forget(0, "gone", TS + 1_000)])
    late = processor.process([review(100, "gone", TS + 999, "迟到的评论乙"), review(101, "gone", TS + 1_000, "同一时刻丙")])
    assert late.updates == [] and not any("迟到" in t or "同一时刻" in t for t in encoder.inputs)
    newer = processor.process([review(102, "gone", TS + 1_001, "回来之后的新评论")])
    assert [u["user_id"] for u in newer.updates] == ["gone"], "events after the request flow again"


def test_a_forget_and_older_texts_in_one_batch_are_still_covered(processor: BatchProcessor, encoder: FakeEncoder) -> None:
    processor.process(others(0, WARMUP))
    out = processor.process([review(50, "gone", TS + 5, "同批次之前的评论丁"), forget(1, "gone", TS + 10)])
    assert [u["kind"] for u in out.updates if u["user_id"] == "gone"] == ["forget"]
    assert not any("同批次" in t for t in encoder.inputs)


def test_erasures_survive_a_checkpoint(processor: BatchProcessor, encoder: FakeEncoder) -> None:
    processor.process([*others(0, WARMUP), forget(0, "gone", TS + 1_000)])
    state = json.loads(json.dumps(processor.state()))
    restored = BatchProcessor(encoder, OnlineClusterer(k=K, warmup=WARMUP, seed=0), kind_of_topic=TOPICS, prefixes={},
                              limits=Limits(max_text_chars=500, reject_text_chars=1000, max_future_ms=300_000))
    restored.load_state(state)
    assert restored.model_version == processor.model_version
    assert restored.erasures.covers("gone", TS + 999)


def test_erasures_expire_once_the_watermark_is_far_past() -> None:
    e = Erasures(horizon_ms=100)
    e.record("u", 1_000)
    e.expire(1_099)
    assert e.covers("u", 1_000)
    e.expire(1_100)
    assert not e.covers("u", 1_000)


def update(kind: str, offset: int, ts: int, source: str = "orders/0") -> dict:
    data = {"cents": 100, "category": "书", "items": 1} if kind == "order" else {}
    return dict(make_update(kind=kind, user_id="u1", event_id=f"{kind}{offset}", ts_ms=ts, source=source,
                            offset=offset, watermark=ts, data=data))


def test_stage2_drops_late_updates_from_before_the_forget_and_starts_anew_after_it() -> None:
    s = ProfileStage({}, {}, Rules(), clock_ms=lambda: TS)
    s.handle(update("order", 0, TS), 0)
    s.handle(update("forget", 0, TS + 100, source="forget-requests/0"), 0)
    assert "u1" not in s.table
    late = s.handle(update("order", 5, TS + 50, source="orders/1"), 0)  # another partition, lagging
    assert late.profiles == [] and "u1" not in s.table
    at_the_request = s.handle(update("order", 6, TS + 100, source="orders/1"), 0)
    assert at_the_request.profiles == [] and "u1" not in s.table
    fresh = s.handle(update("order", 7, TS + 101, source="orders/1"), 0)
    assert [u for u, _ in fresh.profiles] == ["u1"] and s.table["u1"]["counts"]["order"] == 1


def test_stage2_keeps_the_newest_forget_time() -> None:
    s = ProfileStage({}, {}, Rules(), clock_ms=lambda: TS)
    s.handle(update("forget", 0, TS + 100, source="forget-requests/0"), 0)
    s.handle(update("forget", 1, TS + 50, source="forget-requests/0"), 0)
    assert s.forgotten["u1"]["at"] == TS + 100
