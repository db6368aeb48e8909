"""Profile updates: exact counts and money, event-time windows, order independence, idempotence, churn edges."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import fastjsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core import rfm
from stream.core.messages import decode_interest_vector, encode_interest_vector, make_update
from stream.core.profile import (
    DAY_MS,
    Rules,
    apply_update,
    churn_step,
    new_profile,
    public_view,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
RULES = Rules(half_life_ms=30 * DAY_MS, windows_days=(30, 90), inactivity_days=14)
PROFILE_SCHEMA = fastjsonschema.compile(
    json.loads((Path(__file__).parents[2] / "schemas" / "profile.schema.json").read_text()),
    formats={"date-time": lambda _: True},
)


def update(kind: str, offset: int, ts: int, *, source: str | None = None, user: str = "u1", watermark: int | None = None,
           **data: object) -> dict:
    emb = None
    cluster = None
    if kind in ("review", "search"):
        emb = np.random.default_rng(offset).normal(size=8).astype(np.float32)
        emb /= np.linalg.norm(emb)
        cluster = offset % 3
    return make_update(
        kind=kind, user_id=user, event_id=f"e{offset}", ts_ms=ts, source=source or f"{kind}s/0", offset=offset,
        watermark=ts if watermark is None else watermark, data=data, embedding=emb, cluster=cluster,
        keywords=["屏幕", "电池"] if cluster is not None else None, model_version="m" if emb is not None else None,
    )


def run(updates: list[dict], rules: Rules = RULES) -> dict:
    p = new_profile("u1")
    for u in updates:
        p = apply_update(p, u, rules)
    return p


def view(p: dict, as_of: int) -> dict:
    v = public_view(p, as_of=as_of, updated_at_ms=0, rules=RULES)
    PROFILE_SCHEMA(v)
    return v


def mixed_updates(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = T0 + rng.randrange(120 * DAY_MS)
        kind = rng.choice(["review", "search", "order", "user_attributes"])
        data: dict[str, object] = {}
        if kind == "order":
            data = {"cents": rng.randrange(1, 100_000), "category": rng.choice(["手机", "水果"]), "items": 1}
        elif kind == "review":
            data = {"category": rng.choice(["手机", "书籍"]), "rating": None, "sentiment": rng.choice([None, -1.0, 0.5, 1.0])}
        elif kind == "user_attributes":
            data = {"region": rng.choice(["广东", "浙江"]), "gender": rng.choice(["f", "m"])}
        out.append(update(kind, i, ts, **data))
    return out


def test_counts_and_money_are_exact() -> None:
    orders = [update("order", i, T0 + i * DAY_MS, cents=c, category="手机", items=1) for i, c in enumerate([12990, 1, 99999])]
    v = view(run(orders + [update("search", 10, T0)]), as_of=T0 + 2 * DAY_MS)
    assert v["behaviour"]["counts"] == {"review": 0, "search": 1, "order": 3, "user_attributes": 0}
    assert v["consumption"]["orders_total"] == 3
    assert Decimal(v["consumption"]["monetary_total"]) == Decimal("1129.90")


def test_rfm_windows_match_an_independent_computation() -> None:
    rng = random.Random(7)
    as_of = T0 + 200 * DAY_MS
    orders = [(T0 + rng.randrange(200 * DAY_MS), rng.randrange(100, 50_000)) for _ in range(40)]
    p = run([update("order", i, ts, cents=c, category="水果", items=1, watermark=as_of) for i, (ts, c) in enumerate(orders)])
    c = view(p, as_of)["consumption"]
    for days in (30, 90):
        inside = [cents for ts, cents in orders if as_of - ts < days * DAY_MS]
        assert c["windows"][f"{days}d"] == {"orders": len(inside), "monetary": f"{Decimal(sum(inside)) / 100:.2f}"}
    last = max(ts for ts, _ in orders)
    assert c["recency_days"] == round((as_of - last) / DAY_MS, 2)
    expected = rfm.score(c["recency_days"], c["windows"]["90d"]["orders"], float(c["windows"]["90d"]["monetary"]))
    assert c["rfm"] == {"r": expected.r, "f": expected.f, "m": expected.m, "segment": expected.segment}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_any_interleaving_of_sources_gives_the_same_profile(seed: int) -> None:
    updates = mixed_updates(60, seed)
    by_source: dict[str, list[dict]] = {}
    for u in updates:
        by_source.setdefault(u["source"], []).append(u)
    rng = random.Random(seed)
    shuffled: list[dict] = []
    queues = {s: list(q) for s, q in by_source.items()}
    while queues:  # random interleaving that keeps each source partition in offset order, as Kafka does
        s = rng.choice(sorted(queues))
        shuffled.append(queues[s].pop(0))
        if not queues[s]:
            del queues[s]
    as_of = T0 + 130 * DAY_MS
    a, b = view(run(updates), as_of), view(run(shuffled), as_of)
    assert a == b


def test_late_event_time_is_applied_by_event_time_not_arrival() -> None:
    late = [update("user_attributes", 0, T0 + 5 * DAY_MS, region="浙江"), update("user_attributes", 1, T0, region="广东")]
    assert view(run(late), T0 + 5 * DAY_MS)["basic"]["region"] == "浙江"


def test_redelivered_updates_are_skipped() -> None:
    ups = mixed_updates(30, 1)
    once = run(ups)
    assert run(ups + ups[:10] + ups) == once
    p = run(ups)
    assert apply_update(p, ups[3], RULES) is p


def test_both_vector_encodings_give_the_same_direction_and_float16_is_about_a_third() -> None:
    ups = [update("review", i, T0 + i * DAY_MS) for i in range(1, 6)]
    p = run(ups)
    rng = np.random.default_rng(0)
    p["decayed"]["interest"] = rng.normal(size=384).tolist()  # state written before the compact encoding: still read
    compact = view(p, T0 + 6 * DAY_MS)["interests"]
    as_json = public_view(p, as_of=T0 + 6 * DAY_MS, updated_at_ms=0, rules=Rules(vector_encoding="json"))["interests"]
    PROFILE_SCHEMA(public_view(p, as_of=T0, updated_at_ms=0, rules=Rules(vector_encoding="json")))
    assert as_json["interest_vector_encoding"] == "json" and isinstance(as_json["interest_vector"], list)
    a, b = decode_interest_vector(compact["interest_vector"]), decode_interest_vector(as_json["interest_vector"])
    assert a.shape == b.shape == (384,)
    assert np.max(np.abs(a - b)) < 1e-3 and a @ b > 0.9999
    compact_json = {"separators": (",", ":")}
    assert len(json.dumps(as_json["interest_vector"], **compact_json)) > 2.5 * len(json.dumps(compact["interest_vector"]))


def test_no_text_yet_means_an_empty_vector_in_either_encoding() -> None:
    p = run([update("order", 1, T0, cents=100, items=1)])
    assert view(p, T0)["interests"]["interest_vector"] == ""
    assert public_view(p, as_of=T0, updated_at_ms=0, rules=Rules(vector_encoding="json"))["interests"]["interest_vector"] == []
    assert decode_interest_vector("").shape == (0,)
    with pytest.raises(ValueError, match="unknown vector encoding"):
        encode_interest_vector(np.ones(3), "float8")


def test_state_keeps_the_interest_sum_compact() -> None:
    p = run([update("review", i, T0 + i * DAY_MS) for i in range(1, 4)])
    assert isinstance(p["decayed"]["interest"], str)  # base64 float64, about half a JSON float list


def test_interest_vector_is_unit_length_and_follows_recent_text() -> None:
    old = update("review", 1, T0, category="书籍", rating=None, sentiment=None)
    new = update("review", 2, T0 + 300 * DAY_MS, category="书籍", rating=None, sentiment=None)
    v = view(run([old, new]), T0 + 300 * DAY_MS)["interests"]
    assert v["interest_vector_encoding"] == "float16-base64"
    vec = decode_interest_vector(v["interest_vector"])
    assert abs(np.linalg.norm(vec) - 1) < 1e-3
    newest = np.frombuffer(__import__("base64").b64decode(new["embedding"]), dtype="<f4")
    assert vec @ newest > 0.99  # the 300-day-old review has decayed to ~0.1% weight
    assert v["top_clusters"][0]["keywords"] == ["屏幕", "电池"]


def test_sentiment_average_uses_scored_reviews_only() -> None:
    ups = [update("review", 1, T0, sentiment=1.0), update("review", 2, T0, sentiment=None), update("review", 3, T0, sentiment=-0.5)]
    s = view(run(ups), T0)["sentiment"]
    assert s["reviews_scored"] == 2 and s["average"] == pytest.approx(0.25)


def test_churn_alerts_once_when_silent_and_recovers_once_on_return() -> None:
    history = [update("search", i, T0 + i * DAY_MS) for i in range(20)]
    p = run(history)
    last = T0 + 19 * DAY_MS
    alerts = []
    for day in range(1, 40):  # daily ticks while the user is silent
        p, alert = churn_step(p, last + day * DAY_MS, RULES)
        alerts += [alert] if alert else []
    assert [a["type"] for a in alerts] == ["churn_risk"]
    assert alerts[0]["reasons"][0]["code"] == "inactive"
    back = last + 40 * DAY_MS
    p = apply_update(p, update("search", 100, back), RULES)
    p, alert = churn_step(p, back, RULES)
    assert alert is not None and alert["type"] == "recovered"
    p, alert = churn_step(p, back + DAY_MS, RULES)
    assert alert is None


def test_active_user_never_alerts() -> None:
    p = run([update("search", i, T0 + i * DAY_MS // 2) for i in range(200)])
    for day in range(0, 100, 5):
        p, alert = churn_step(p, T0 + day * DAY_MS, RULES)
        assert alert is None


def _containers(value: object, path: str = "") -> list[tuple[str, object]]:
    """Every nested dict and list of a profile, with its path."""
    out: list[tuple[str, object]] = []
    if isinstance(value, dict):
        out.append((path, value))
        for k, v in value.items():
            out += _containers(v, f"{path}/{k}")
    elif isinstance(value, list):
        out.append((path, value))
        for i, v in enumerate(value):
            out += _containers(v, f"{path}/{i}")
    return out


def test_an_update_never_shares_a_mutable_part_with_its_input() -> None:
    """Mutating any nested part of the result (present or future field) leaves the input as it was."""
    p = new_profile("u1")
    data: dict[str, dict] = {"review": {"category": "书", "sentiment": 0.5, "tokens": ["作者"]},
                             "order": {"cents": 1230, "items": 1}, "user_attributes": {"region": "浙江"},
                             "search": {"tokens": ["耳机"]}}
    for i, (kind, fields) in enumerate(data.items()):
        p = apply_update(p, update(kind, i, T0 + i * DAY_MS, **fields), RULES)
    before = json.dumps(p, sort_keys=True)
    after = apply_update(p, update("review", 9, T0 + 9 * DAY_MS, **data["review"]), RULES)
    inputs = {id(c) for _, c in _containers(p)}
    shared = [path for path, c in _containers(after) if id(c) in inputs]
    assert shared == [], f"result shares {shared} with its input"
    for _, c in _containers(after):
        if isinstance(c, dict):
            c["mutated"] = True
        else:
            c.append("mutated")
    assert json.dumps(p, sort_keys=True) == before


def test_events_in_generic_clusters_rank_below_what_the_user_buys() -> None:
    """Two praise-only reviews (a "how it is said" cluster) weigh less than one review about the product."""
    praise = [{**update("review", i, T0 + i), "cluster": 7, "generic": True} for i in range(2)]
    product = {**update("review", 5, T0 + 5), "cluster": 2}
    top = view(run([*praise, product]), T0 + DAY_MS)["interests"]["top_clusters"]
    assert [c["cluster"] for c in top] == [2, 7]


def test_topics_sum_the_users_clusters_under_the_newest_grouping() -> None:
    grouping = [0, 0, 0, 5, 5, 5]
    ups = [{**update("review", i, T0 + i), "cluster": c, "topic_of": grouping, "topic_keywords": [f"w{grouping[c]}"]}
           for i, c in enumerate([1, 2, 5])]
    topics = view(run(ups), T0 + DAY_MS)["interests"]["topics"]
    assert [(t["topic"], t["keywords"]) for t in topics] == [(0, ["w0"]), (5, ["w5"])]
    assert topics[0]["share"] > topics[1]["share"]
    regrouped = {**update("review", 9, T0 + 9), "cluster": 5, "topic_of": [0, 0, 0, 5, 5, 0], "topic_keywords": ["w0"]}
    assert [t["topic"] for t in view(run([*ups, regrouped]), T0 + DAY_MS)["interests"]["topics"]] == [0]
