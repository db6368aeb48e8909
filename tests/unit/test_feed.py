"""Feed generators: determinism, exact counts, event contracts, category skew, churn, JSONL and CSV input."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.devtools.feed import (
    CATEGORIES,
    KINDS,
    FeedEvent,
    demo_feed,
    load_labelled_reviews,
    read_jsonl,
    reviews_feed,
    write_jsonl,
)

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
COMMON = {"event_id": str, "user_id": str, "ts": str}
REQUIRED = {
    "review": {"item_id": str, "category": (str, type(None)), "rating": (int, type(None)), "text": str},
    "search": {"query": str},
    "order": {"order_id": str, "amount": str, "currency": str, "category": str, "items": int},
    "user_attributes": {},
}
OPTIONAL = {"age_band": ("18-24", "25-34", "35-44", "45-54", "55+"), "gender": ("f", "m", "x")}


def parse(ts: str) -> datetime:
    assert TS.match(ts), ts
    return datetime.fromisoformat(ts)


def check_event(e: FeedEvent) -> None:
    assert e.kind in KINDS
    for key, types in (COMMON | REQUIRED[e.kind]).items():
        assert isinstance(e.event[key], types), (key, e)
    parse(e.event["ts"])
    if e.kind == "review":
        assert e.event["rating"] is None or 1 <= e.event["rating"] <= 5
        assert e.event["text"] and len(e.event["text"]) <= 120
        assert e.label in CATEGORIES and e.event["category"] in (None, e.label)
    elif e.kind == "search":
        assert 2 <= len(e.event["query"]) <= 15 and e.label in CATEGORIES
    elif e.kind == "order":
        assert re.fullmatch(r"\d+\.\d{2}", e.event["amount"]) and Decimal(e.event["amount"]) > 0
        assert e.event["currency"] == "CNY" and e.event["category"] in CATEGORIES and e.event["items"] >= 1
        assert e.label is None
    else:
        for key, allowed in OPTIONAL.items():
            assert e.event.get(key, allowed[0]) in allowed
        if "registered_at" in e.event:
            assert parse(e.event["registered_at"]) < parse(e.event["ts"])
        assert e.label is None


def test_deterministic_per_seed() -> None:
    assert list(demo_feed(20, 500, seed=7)) == list(demo_feed(20, 500, seed=7))
    assert list(demo_feed(20, 500, seed=7)) != list(demo_feed(20, 500, seed=8))


def test_default_start_is_fixed_and_start_is_honoured() -> None:
    assert next(demo_feed(3, 10)).event["ts"] == "2026-01-01T00:00:00.000Z"
    start = datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)
    assert next(demo_feed(3, 10, start=start)).event["ts"] == "2026-11-28T15:00:00.000Z"


@settings(max_examples=40, deadline=None)
@given(n_users=st.integers(1, 30), extra=st.integers(0, 300), seed=st.integers(0, 2**32),
       kinds=st.sets(st.sampled_from(KINDS), min_size=1).filter(lambda k: k != {"user_attributes"}),
       silent=st.sampled_from((0.0, 0.2, 0.5)))
def test_counts_order_and_contracts(n_users: int, extra: int, seed: int, kinds: set[str], silent: float) -> None:
    n_events = n_users + extra + (n_users * 2 if silent else 0)  # enough room for silent users to appear early
    events = list(demo_feed(n_users, n_events, seed=seed, kinds=sorted(kinds), silent_fraction=silent))
    assert len(events) == n_events
    assert len({e.event["event_id"] for e in events}) == n_events
    assert len({e.event["user_id"] for e in events}) == n_users
    assert {e.kind for e in events} <= kinds
    times = [parse(e.event["ts"]) for e in events]
    assert times == sorted(times)
    attributes = Counter(e.event["user_id"] for e in events if e.kind == "user_attributes")
    if "user_attributes" in kinds:
        assert len(attributes) == n_users and set(attributes.values()) == {1}
    for e in events:
        check_event(e)


def test_event_mix_roughly_45_35_20() -> None:
    counts = Counter(e.kind for e in demo_feed(50, 10_050, seed=3))
    assert counts["user_attributes"] == 50
    assert counts["search"] / 10_000 == pytest.approx(0.45, abs=0.03)
    assert counts["review"] / 10_000 == pytest.approx(0.35, abs=0.03)
    assert counts["order"] / 10_000 == pytest.approx(0.20, abs=0.03)
    only = Counter(e.kind for e in demo_feed(10, 1000, seed=3, kinds=("review", "order")))
    assert set(only) == {"review", "order"} and only["review"] > only["order"]


def test_users_prefer_few_categories() -> None:
    per_user: dict[str, Counter[str]] = defaultdict(Counter)
    for e in demo_feed(40, 20_000, seed=11):
        if e.label is not None:
            per_user[e.event["user_id"]][e.label] += 1
    assert len(per_user) == 40
    for user, counts in per_user.items():
        total = sum(counts.values())
        if total >= 30:
            top3 = sum(n for _, n in counts.most_common(3))
            assert top3 / total >= 0.7, (user, counts)


def test_ratings_follow_sentiment_words() -> None:
    reviews = [e.event for e in demo_feed(10, 3000, seed=5, kinds=("review",))]
    high = [r["text"] for r in reviews if r["rating"] in (4, 5)]
    low = [r["text"] for r in reviews if r["rating"] in (1, 2)]
    assert high and low and not any(r["rating"] == 3 for r in reviews)
    assert not any(re.search("差|失望|再也不", t) for t in high)
    assert not any(re.search("好评|推荐|超出预期", t) for t in low)
    texts = [r["text"] for r in reviews]
    assert any(re.search(r"1[3-9]\d{9}|@", t) for t in texts)  # PII present so masking is exercised
    assert any(len(t) <= 4 for t in texts) and any(len(t) >= 60 for t in texts)


@pytest.mark.parametrize("kinds", [KINDS, ("search", "review")])
def test_silent_users_stop_after_40_percent(kinds: tuple[str, ...]) -> None:
    events = list(demo_feed(20, 4000, seed=2, silent_fraction=0.25, kinds=kinds))
    times = [parse(e.event["ts"]) for e in events]
    cutoff = times[0] + 0.4 * (times[-1] - times[0])
    last: dict[str, datetime] = {}
    for e, t in zip(events, times):
        last[e.event["user_id"]] = t
    silent = {u for u, t in last.items() if t <= cutoff}
    assert len(silent) == 5  # 25% of 20; with ~200 events each, the others are still active late in the feed
    assert all(t > times[0] + 0.9 * (times[-1] - times[0]) for u, t in last.items() if u not in silent)


@pytest.mark.parametrize("kwargs", [
    {"n_users": 0, "n_events": 10}, {"n_users": 10, "n_events": 9}, {"n_users": 2, "n_events": 10, "kinds": ()},
    {"n_users": 2, "n_events": 10, "kinds": ("clicks",)}, {"n_users": 2, "n_events": 10, "silent_fraction": 1.0},
    {"n_users": 2, "n_events": 10, "kinds": ("user_attributes",)},
    {"n_users": 10, "n_events": 12, "silent_fraction": 0.5},
])
def test_impossible_arguments_fail_at_the_call(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        demo_feed(**kwargs)


def test_jsonl_round_trip(tmp_path) -> None:
    events = list(demo_feed(5, 200, seed=4))
    path = tmp_path / "feed.jsonl"
    assert write_jsonl(iter(events), path) == 200
    assert list(read_jsonl(path)) == events
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["kind"] == "user_attributes" and "label" not in first


def test_read_jsonl_names_the_bad_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"kind": "search", "event": {"query": "手机"}})
    for bad in ("{not json", json.dumps({"kind": "clicks", "event": {}}), json.dumps({"kind": "search"})):
        path.write_text(f"{good}\n\n{bad}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
            list(read_jsonl(path))


def write_csv(path, rows, header=("cat", "label", "review"), bom=True) -> None:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


REAL = [("水果", 1, "\ufeff很甜，很新鲜，\"下次\"还买"), ("水果", 0, "烂了一半, 差评"), ("书籍", 1, "印刷不错，内容好"),
        ("书籍", 0, "盗版书，纸很差"), ("酒店", 1, "位置好\n早餐丰富"), ("酒店", 0, "")]


def test_load_labelled_reviews(tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    write_csv(path, REAL)
    rows = load_labelled_reviews(path)
    assert rows[0] == ("很甜，很新鲜，\"下次\"还买", "水果", 1)  # BOM of file and of text stripped, quotes kept
    assert ("烂了一半, 差评", "水果", 0) in rows and ("位置好\n早餐丰富", "酒店", 1) in rows
    assert len(rows) == 5  # the empty text is skipped
    assert {s for *_, s in load_labelled_reviews(path, sentiment_column=None)} == {None}


def test_reviews_feed_uses_the_file(tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    write_csv(path, REAL, bom=False)
    texts = set(load_labelled_reviews(path))
    events = list(reviews_feed(path, 6, 600, seed=1))
    assert events == list(reviews_feed(path, 6, 600, seed=1))
    assert len(events) == 600 and len({e.event["user_id"] for e in events}) == 6
    reviews = [e for e in events if e.kind == "review"]
    assert reviews
    for e in events:
        check_event(e)
        assert e.label in (None, "水果", "书籍", "酒店")
    for e in reviews:
        sentiment = next(s for text, cat, s in texts if text == e.event["text"] and cat == e.label)
        assert e.event["rating"] is None or (e.event["rating"] >= 4) == (sentiment == 1)


def test_reviews_feed_errors_name_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        reviews_feed(missing, 2, 10)
    wrong = tmp_path / "wrong.csv"
    write_csv(wrong, [("水果", "1", "好")], header=("category", "label", "text"))
    with pytest.raises(ValueError, match=r"wrong\.csv.*'review'.*'cat'"):
        reviews_feed(wrong, 2, 10)
    other = tmp_path / "other.csv"
    write_csv(other, [("玩具", "1", "好玩")])
    with pytest.raises(ValueError, match="玩具"):
        reviews_feed(other, 2, 10)
