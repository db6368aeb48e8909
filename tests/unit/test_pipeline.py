"""Tests for stream.worker.pipeline.BatchProcessor with a fake encoder: dead letters, warm-up holding, idempotent learning."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

import fastjsonschema
import numpy as np
import pytest

from stream.core.clustering import OnlineClusterer
from stream.core.events import Limits, format_ts, schema
from stream.core.messages import unpack_vector
from stream.core.text import clean
from stream.worker.pipeline import BatchProcessor, Record

K, WARMUP, DIM = 3, 12, 16
TS = 1767225600000  # 2026-01-01T00:00:00Z
TOPICS = {"reviews": "review", "searches": "search"}
PREFIXES = {"search": "query: "}

REVIEW_TEXTS = ["屏幕很清晰", "物流很快", "质量一般", "电池耐用", "默认好评", "尺码偏小", "音质不错", "包装完好"]


class FakeEncoder:
    """Deterministic unit vectors from a hash of the text; remembers every input it was given."""

    dim = DIM
    version = "fake-enc@v1"
    device = "cpu"

    def __init__(self) -> None:
        self.inputs: list[str] = []

    @staticmethod
    def vector(text: str) -> np.ndarray:
        v = np.random.default_rng(zlib.crc32(text.encode("utf-8"))).standard_normal(DIM)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.inputs.extend(texts)
        return np.stack([self.vector(t) for t in texts]) if texts else np.empty((0, DIM), np.float32)


def review(n: int, text: str | None = None, **extra: Any) -> bytes:
    obj = {
        "event_id": f"r-{n}",
        "user_id": f"u-{n % 4}",
        "ts": TS + n * 1000,
        "item_id": f"sku-{n}",
        "rating": 1 + n % 5,
        "text": text if text is not None else REVIEW_TEXTS[n % len(REVIEW_TEXTS)] + f" {n}",
        **extra,
    }
    return json.dumps(obj, ensure_ascii=False).encode()


def search(n: int, query: str | None = None) -> bytes:
    obj = {"event_id": f"s-{n}", "user_id": f"u-{n % 4}", "ts": format_ts(TS + n * 1000), "query": query or f"蓝牙耳机 {n}"}
    return json.dumps(obj, ensure_ascii=False).encode()


def rec(topic: str, offset: int, value: bytes | None, partition: int = 0, key: bytes | None = b"u") -> Record:
    return Record(topic=topic, partition=partition, offset=offset, key=key, value=value)


def reviews(offsets: range, partition: int = 0) -> list[Record]:
    return [rec("reviews", o, review(o), partition) for o in offsets]


@pytest.fixture
def encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def clusterer() -> OnlineClusterer:
    return OnlineClusterer(k=K, warmup=WARMUP, seed=0)


@pytest.fixture
def processor(encoder: FakeEncoder, clusterer: OnlineClusterer) -> BatchProcessor:
    return BatchProcessor(encoder, clusterer, kind_of_topic=TOPICS, prefixes=PREFIXES,
                          limits=Limits(max_text_chars=500, reject_text_chars=1000, max_future_ms=300_000))


@pytest.fixture
def fitted(processor: BatchProcessor) -> BatchProcessor:
    result = processor.process(reviews(range(WARMUP)))
    assert len(result.updates) == WARMUP and processor.clusterer.fitted
    return processor


# --- dead letters ------------------------------------------------------------------------


def test_bad_records_become_dead_letters_with_reason_and_original_bytes(processor: BatchProcessor) -> None:
    bad = [
        rec("reviews", 3, b'{"event_id": ', partition=2, key=b"user-7"),
        rec("reviews", 4, b"\xff\xfe not utf-8", partition=2),
        rec("searches", 9, None, partition=1, key=None),
        rec("reviews", 5, review(5, rating=9), partition=2),
        rec("clicks", 0, b"{}"),
        rec("reviews", 6, review(6, text="好" * 1001), partition=2),
    ]
    result = processor.process([*bad, rec("reviews", 7, review(7), partition=2)])
    assert [d.record for d in result.dead_letters] == bad
    assert [d.reason for d in result.dead_letters] == [
        "not valid JSON",
        "not valid JSON",
        "empty record",
        "schema violation",
        "unknown event type",
        "text too long",
    ]
    assert [d.key for d in result.dead_letters] == [
        "reviews/2/3", "reviews/2/4", "searches/1/9", "reviews/2/5", "clicks/0/0", "reviews/2/6",
    ]
    assert all(d.error for d in result.dead_letters)
    assert result.held == 1  # the one valid record waits for the warm start


@pytest.fixture(scope="module")
def dead_letter_contract() -> Any:
    return fastjsonschema.compile(schema("dead-letter.schema.json"), formats={"date-time": lambda _: True})


def test_dead_letter_message_carries_the_decoded_record_not_its_bytes(processor: BatchProcessor, dead_letter_contract: Any) -> None:
    raw = b'{"event_id": "e", "user_id": 5}'
    result = processor.process([rec("reviews", 41, raw, partition=2, key=b"\x00key")])
    (dead,) = result.dead_letters
    msg = dead.message(failed_at_ms=TS + 5)
    dead_letter_contract(msg)
    assert "value" not in msg and msg["key"] is None  # no pseudonym key: the raw key is dropped
    assert msg["value_text"] == '{"event_id":"e","user_id":5}' and msg["value_bytes"] == len(raw)
    assert (msg["topic"], msg["partition"], msg["offset"]) == ("reviews", 2, 41)
    assert msg["reason"] == "schema violation" and msg["error"]
    assert msg["failed_at"] == "2026-01-01T00:00:00.005Z"
    json.dumps(msg)  # publishable as JSON


def test_every_dead_letter_message_meets_its_contract(processor: BatchProcessor, dead_letter_contract: Any) -> None:
    bad = [
        rec("reviews", 1, b"\xff\x00\xfe", key=None),
        rec("searches", 2, None),
        rec("reviews", 3, b"[]"),
        rec("reviews", 4, review(4, ts="2026-01-01T00:00:00")),
        rec("clicks", 5, b"{}"),
    ]
    result = processor.process(bad)
    assert len(result.dead_letters) == len(bad)
    for dead in result.dead_letters:
        msg = dead.message(TS)
        dead_letter_contract(msg)
        if dead.record.value is None:
            assert msg["value_text"] is None
        else:
            assert msg["value_bytes"] == len(dead.record.value) and not msg["truncated"]
    binary = result.dead_letters[0].message(TS)
    assert binary["key"] is None and binary["reason"] == "not valid JSON"


def test_dead_letters_do_not_leak_personal_data(processor: BatchProcessor) -> None:
    raw = json.dumps({"event_id": "e", "user_id": "u", "text": "电话13812345678 邮箱a@b.com"}, ensure_ascii=False).encode()
    (dead,) = processor.process([rec("reviews", 8, raw)]).dead_letters
    msg = json.dumps(dead.message(TS), ensure_ascii=False)
    assert "13812345678" not in msg and "a@b.com" not in msg
    assert dead.key == "reviews/0/8"  # the original stays reachable by its position


# --- holding until the warm start ----------------------------------------------------------


def test_records_are_held_until_warmup_then_released_together(processor: BatchProcessor) -> None:
    first = processor.process(reviews(range(0, 5)))
    assert (first.updates, first.held) == ([], 5)
    second = processor.process([*reviews(range(5, 9)), rec("reviews", 9, b"junk")])
    assert (second.updates, second.held) == ([], 9)
    assert len(second.dead_letters) == 1  # dead letters are not held back
    assert not processor.clusterer.fitted

    third = processor.process(reviews(range(10, 13)))
    assert processor.clusterer.fitted
    assert third.held == 0
    assert [u["offset"] for u in third.updates] == [*range(0, 9), *range(10, 13)]
    assert processor.process([]).held == 0


def test_force_fit_with_at_least_k_held_fits_early(processor: BatchProcessor) -> None:
    assert processor.process(reviews(range(K))).held == K
    result = processor.process([], force_fit=True)
    assert processor.clusterer.fitted
    assert [u["offset"] for u in result.updates] == list(range(K))
    assert result.held == 0


def test_force_fit_with_fewer_than_k_keeps_holding(processor: BatchProcessor) -> None:
    result = processor.process(reviews(range(K - 1)), force_fit=True)
    assert not processor.clusterer.fitted
    assert (result.updates, result.held) == ([], K - 1)
    result = processor.process(reviews(range(K - 1, K)), force_fit=True)
    assert processor.clusterer.fitted and len(result.updates) == K


# --- idempotent learning -----------------------------------------------------------------


def test_redelivered_record_is_assigned_but_not_learned_again(fitted: BatchProcessor) -> None:
    clusterer = fitted.clusterer
    updates, centres, version = clusterer.updates, clusterer.centers.copy(), clusterer.version

    again = fitted.process(reviews(range(3, 6)))  # a restart redelivers offsets it already learned
    assert [u["offset"] for u in again.updates] == [3, 4, 5]
    assert all(0 <= u["cluster"] < K for u in again.updates)
    assert clusterer.updates == updates and clusterer.version == version
    np.testing.assert_array_equal(clusterer.centers, centres)

    new = fitted.process(reviews(range(WARMUP, WARMUP + 1)))
    assert [u["offset"] for u in new.updates] == [WARMUP]
    assert clusterer.updates == updates + 1
    assert not np.array_equal(clusterer.centers, centres)


def test_offsets_are_tracked_per_partition(fitted: BatchProcessor) -> None:
    clusterer = fitted.clusterer
    before = clusterer.updates
    fitted.process(reviews(range(0, 2), partition=1))  # same offsets, another partition: new records
    assert clusterer.updates == before + 1
    fitted.process(reviews(range(0, 2), partition=1))
    assert clusterer.updates == before + 1


def test_mixed_batch_learns_only_the_new_records(fitted: BatchProcessor) -> None:
    clusterer = fitted.clusterer
    seen = clusterer.seen
    result = fitted.process(reviews(range(WARMUP - 2, WARMUP + 3)))
    assert len(result.updates) == 5
    assert clusterer.seen == seen + 3


# --- update contents ---------------------------------------------------------------------


def test_updates_carry_source_position_identity_time_cluster_and_versions(fitted: BatchProcessor) -> None:
    assigned_with = fitted.model_version
    result = fitted.process([rec("reviews", 20, review(20)), rec("searches", 7, search(7), partition=1)])
    by_kind = {u["kind"]: u for u in result.updates}
    r, s = by_kind["review"], by_kind["search"]
    assert (r["source"], r["offset"], r["event_id"], r["user_id"], r["ts"]) == ("reviews/0", 20, "r-20", "u-0", TS + 20_000)
    assert (s["source"], s["offset"], s["event_id"], s["user_id"], s["ts"]) == ("searches/1", 7, "s-7", "u-3", TS + 7_000)
    for u in (r, s):
        assert isinstance(u["ts"], int)
        assert isinstance(u["cluster"], int) and 0 <= u["cluster"] < K
        assert FakeEncoder.version in u["model_version"]
        assert fitted.clusterer.lineage in u["model_version"]
        assert u["model_version"] == assigned_with, "the version that assigned it, not the one its learning made"
    assert fitted.model_version != assigned_with


def test_update_embedding_belongs_to_its_own_event(fitted: BatchProcessor) -> None:
    """Batching must not shuffle embeddings between events."""
    texts = {20: "屏幕很清晰", 21: "尺码偏小，建议买大一号", 22: "默认好评"}
    result = fitted.process([rec("reviews", o, review(o, text=t)) for o, t in texts.items()])
    for u in result.updates:
        expected = FakeEncoder.vector(clean(texts[u["offset"]]).text)
        np.testing.assert_array_equal(unpack_vector(u["embedding"]), expected)
        assert u["cluster"] == int(fitted.clusterer.assign(expected)[0][0])


def test_search_queries_get_their_prefix(fitted: BatchProcessor, encoder: FakeEncoder) -> None:
    encoder.inputs.clear()
    fitted.process([rec("searches", 1, search(1, "蓝牙耳机")), rec("reviews", 30, review(30, text="蓝牙耳机"))])
    assert sorted(encoder.inputs) == sorted(["query: 蓝牙耳机", "蓝牙耳机"])


def test_model_version_changes_after_learning(fitted: BatchProcessor) -> None:
    first = fitted.process(reviews(range(WARMUP, WARMUP + 1))).updates[0]["model_version"]
    second = fitted.process(reviews(range(WARMUP + 1, WARMUP + 2))).updates[0]["model_version"]
    assert first != second
    assert first.split("+")[0] == second.split("+")[0] == FakeEncoder.version


# --- privacy -----------------------------------------------------------------------------


def test_pii_never_reaches_the_encoder(processor: BatchProcessor, encoder: FakeEncoder) -> None:
    pii_review = review(0, text="收货电话13812345678，邮箱a@b.com，东西很好")
    pii_search = search(1, "a@b.com 13812345678 手机")
    processor.process([rec("reviews", 0, pii_review), rec("searches", 1, pii_search)], force_fit=False)
    assert len(encoder.inputs) == 2
    for text in encoder.inputs:
        assert "13812345678" not in text
        assert "a@b.com" not in text
    assert any("[PHONE]" in t and "[EMAIL]" in t for t in encoder.inputs)


def test_held_record_redelivered_before_warm_start_is_buffered_once(processor: BatchProcessor) -> None:
    assert processor.process(reviews(range(0, 6))).held == 6
    assert processor.process(reviews(range(0, 6))).held == 6  # the same six records again
    assert not processor.clusterer.fitted
    result = processor.process(reviews(range(6, WARMUP)))
    assert [u["offset"] for u in result.updates] == list(range(WARMUP))
    assert processor.clusterer.seen == WARMUP


def test_probe_texts_get_the_clusters_their_encoding_gives_under_the_current_version(fitted: BatchProcessor) -> None:
    texts = ["屏幕很清晰", "尺码偏小，建议买大一号"]
    answer = fitted.assign_texts(texts)
    expected = fitted.view.assign(np.stack([FakeEncoder.vector(clean(t).text) for t in texts]))[0]
    assert answer["clusters"] == [int(c) for c in expected]
    assert answer["model_version"] == fitted.model_version
