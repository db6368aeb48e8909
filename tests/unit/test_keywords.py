"""Tests for stream.core.keywords: c-TF-IDF ranking, bounded memory, reversible and JSON-safe counts."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.keywords import ClusterTerms
from stream.core.text import clean, stopwords


def test_ctfidf_scores_match_the_formula() -> None:
    terms = ClusterTerms({0: {"屏幕": 3.0, "质量": 1.0}, 1: {"房间": 2.0, "质量": 2.0}})
    avg = (4.0 + 4.0) / 2  # A: average tokens per cluster
    expected = {
        0: {"屏幕": 3 / 4 * math.log(1 + avg / 3), "质量": 1 / 4 * math.log(1 + avg / 3)},
        1: {"房间": 2 / 4 * math.log(1 + avg / 2), "质量": 2 / 4 * math.log(1 + avg / 3)},
    }
    got = terms.top_keywords(10)
    assert got.keys() == expected.keys()
    for cluster, scores in expected.items():
        assert dict(got[cluster]) == pytest.approx(scores)
    assert [w for w, _ in got[0]] == ["屏幕", "质量"]
    assert [w for w, _ in got[1]] == ["房间", "质量"]


def test_distinctive_word_beats_a_more_frequent_shared_word() -> None:
    # 质量 is the most frequent word of cluster 0 but every cluster uses it as much.
    terms = ClusterTerms()
    for cluster, own in enumerate(["屏幕", "房间", "苹果", "衣服"]):
        terms.add(cluster, ["质量"] * 4 + [own] * 3)
    for cluster, kw in terms.top_keywords(1).items():
        assert kw[0][0] == ["屏幕", "房间", "苹果", "衣服"][cluster]


def test_top_keywords_n_limits_and_ties_are_deterministic() -> None:
    terms = ClusterTerms({5: {"b": 1.0, "a": 1.0, "c": 1.0}})
    assert [w for w, _ in terms.top_keywords(2)[5]] == ["a", "b"]
    assert terms.top_keywords(0) == {5: []}
    assert ClusterTerms().top_keywords() == {}


def test_keywords_from_cleaned_reviews_are_not_stopwords() -> None:
    reviews = {
        0: ["这个手机屏幕很清晰，电池也挺耐用的", "手机信号非常好，屏幕大"],
        1: ["酒店房间干净，前台服务热情", "房间很大，早餐也还可以，前台态度好"],
    }
    terms = ClusterTerms()
    for cluster, texts in reviews.items():
        for text in texts:
            terms.add(cluster, clean(text).tokens)
    top = terms.top_keywords(3)
    assert top[0][0][0] in {"手机", "屏幕"} and top[1][0][0] in {"房间", "前台"}
    assert not {w for kw in top.values() for w, _ in kw} & stopwords()


def test_decay_prunes_small_counts_and_empty_clusters() -> None:
    terms = ClusterTerms(min_count=0.1)
    terms.add(0, ["a1"], weight=1.0)
    terms.add(1, ["b1"], weight=0.15)
    terms.decay(0.5)
    assert terms.counts == {0: {"a1": 0.5}}
    for _ in range(10):
        terms.decay(0.5)
    assert terms.counts == {} and len(terms) == 0
    with pytest.raises(ValueError):
        terms.decay(0.0)
    with pytest.raises(ValueError):
        terms.decay(1.5)


def test_prune_keeps_top_n_per_cluster() -> None:
    terms = ClusterTerms({0: {f"w{i}": float(i) for i in range(1, 11)}, 1: {"x": 1.0}})
    terms.prune(3)
    assert terms.counts == {0: {"w10": 10.0, "w9": 9.0, "w8": 8.0}, 1: {"x": 1.0}}
    terms.prune(0)
    assert terms.counts == {}


def test_remove_never_goes_negative() -> None:
    terms = ClusterTerms()
    terms.add(0, ["a1", "b1"])
    terms.decay(0.5)
    terms.remove(0, ["a1"])  # remove more than is left after decay
    terms.remove(7, ["zz"])  # unknown cluster: nothing happens
    assert terms.counts == {0: {"b1": 0.5}}


def test_invalid_weights_are_rejected() -> None:
    terms = ClusterTerms()
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            terms.add(0, ["a1"], weight=bad)
    with pytest.raises(ValueError):
        ClusterTerms({0: {"a1": -1.0}})
    with pytest.raises(ValueError):
        ClusterTerms.from_dict({"format": 99, "clusters": {}})


def test_snapshot_is_json_safe() -> None:
    terms = ClusterTerms({3: {"屏幕": 1.5}, 10: {"房间": 0.25}})
    data = json.loads(json.dumps(terms.to_dict(), ensure_ascii=False))
    assert ClusterTerms.from_dict(data) == terms
    assert list(data["clusters"]) == ["3", "10"]


# --------------------------------------------------------------------------- properties

tokens_st = st.lists(st.sampled_from(["屏幕", "电池", "房间", "前台", "苹果", "新鲜", "衣服", "ab"]), max_size=6)
adds_st = st.lists(
    st.tuples(st.integers(0, 4), tokens_st, st.floats(0.1, 10.0, allow_nan=False, allow_infinity=False)),
    max_size=12,
)


def build(adds: list[tuple[int, list[str], float]]) -> ClusterTerms:
    terms = ClusterTerms()
    for cluster, toks, weight in adds:
        terms.add(cluster, toks, weight)
    return terms


def approx_equal(a: ClusterTerms, b: ClusterTerms) -> bool:
    if a.counts.keys() != b.counts.keys():
        return False
    return all(
        a.counts[c].keys() == b.counts[c].keys()
        and all(math.isclose(a.counts[c][t], b.counts[c][t], rel_tol=1e-9, abs_tol=1e-9) for t in a.counts[c])
        for c in a.counts
    )


@settings(max_examples=200, deadline=None)
@given(adds_st, st.integers(0, 4), tokens_st, st.floats(0.1, 10.0, allow_nan=False, allow_infinity=False))
def test_add_then_remove_restores(adds, cluster, toks, weight) -> None:
    terms = build(adds)
    before = ClusterTerms.from_dict(terms.to_dict())
    terms.add(cluster, toks, weight)
    terms.remove(cluster, toks, weight)
    assert approx_equal(terms, before)


@settings(max_examples=200, deadline=None)
@given(adds_st, st.floats(0.05, 1.0))
def test_snapshot_round_trip(adds, factor) -> None:
    terms = build(adds)
    terms.decay(factor)
    assert ClusterTerms.from_dict(json.loads(json.dumps(terms.to_dict()))) == terms
    assert all(c >= terms.min_count for t in terms.counts.values() for c in t.values())
