"""Coarse topics and the user-level interest metric on synthetic data (fake encoder, no model, no Kafka)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np

from stream.core.coarse import group_clusters, topic_terms
from stream.core.keywords import ClusterTerms
from stream.devtools.users_eval import SimUser, precision, run_users_eval, simulate

from .test_evaluate import CATEGORY_WORDS, WordHashEncoder, write_reviews


def test_topics_group_clusters_whose_centres_are_close() -> None:
    rng = np.random.default_rng(0)
    axes = np.eye(3, 16)
    centers = np.stack([axes[i // 4] + 0.05 * rng.standard_normal(16) for i in range(12)])  # 3 groups of 4
    topic_of = group_clusters(centers, 3)
    assert [topic_of[c] for c in range(12)] == [0] * 4 + [4] * 4 + [8] * 4, "named by the smallest member"
    assert group_clusters(centers, 0) == {c: c for c in range(12)}, "0 topics: every cluster is its own"
    assert set(group_clusters(centers, 1).values()) == {0}


def test_topic_ids_do_not_depend_on_cluster_order_within_a_group() -> None:
    rng = np.random.default_rng(1)
    centers = np.stack([np.eye(2, 8)[i % 2] + 0.05 * rng.standard_normal(8) for i in range(6)])  # groups {0,2,4}, {1,3,5}
    assert group_clusters(centers, 2) == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0, 5: 1}


def test_topic_keywords_are_ranked_against_other_topics() -> None:
    terms = ClusterTerms({0: {"屏幕": 3.0, "质量": 1.0}, 1: {"电池": 2.0, "质量": 1.0}, 2: {"房间": 4.0, "质量": 1.0}})
    topic = topic_terms(terms, {0: 0, 1: 0, 2: 2})
    top = {t: [w for w, _ in kws] for t, kws in topic.top_keywords(2).items()}
    assert top == {0: ["屏幕", "电池"], 2: ["房间", "质量"]}


def test_simulated_users_prefer_their_categories_and_use_each_text_once() -> None:
    rows = [(f"{cat}-{i}", cat) for cat in "ABCDE" for i in range(200)]
    users, events = simulate(rows, users=50, query_share=0.0, seed=3)
    assert all(1 <= len(u.preferred) <= 3 for u in users)
    assert len({e.text for e in events}) == len(events)
    preferred = {u.user_id: u.preferred for u in users}
    share = sum(e.label in preferred[e.user_id] for e in events) / len(events)
    assert share > 0.8
    assert [e.ts_ms for e in events] == sorted(e.ts_ms for e in events)


def test_precision_counts_only_the_users_top_m_clusters() -> None:
    views = {"a": {"interests": {"top_clusters": [{"cluster": 0}, {"cluster": 1}, {"cluster": 2}]}},
             "b": {"interests": {"top_clusters": [{"cluster": 2}]}}}
    users = [SimUser("a", ("书",)), SimUser("b", ("书", "酒店"))]
    assert precision(views, users, {0: "书", 1: "水果", 2: "酒店"}) == 1.0  # a: top 1 only; b: its one cluster
    assert precision(views, users, {0: "水果", 1: "书", 2: "水果"}) == 0.0


def test_users_eval_streams_through_both_stages_and_reaches_the_offline_ceiling(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "reviews.csv", list(CATEGORY_WORDS), 150)
    result = run_users_eval(path, encoder=WordHashEncoder(), ks=(4, 8), topics=2, users=40, limit=None, seed=1)
    assert [r.k for r in result.runs] == [4, 8] and result.events["review"] > 0 and result.events["search"] > 0
    for run in result.runs:
        assert run.offline.clusters > 0.8
        assert run.online.clusters >= run.offline.clusters - 0.1
        assert run.online.topics > 0.5
    labels = Counter(m[0] for m in result.runs[0].majority.values())
    assert len(labels) == 4, "at k = 4 every category has its own cluster"


def test_a_random_encoder_scores_near_chance() -> None:
    rng = random.Random(0)
    users = [SimUser(f"u{i}", (rng.choice("ABCDE"),)) for i in range(200)]
    views = {u.user_id: {"interests": {"top_clusters": [{"cluster": rng.randrange(5)}]}} for u in users}
    assert precision(views, users, dict(enumerate("ABCDE"))) < 0.35


def test_users_report_has_the_per_k_table_and_readable_clusters(tmp_path: Path) -> None:
    from stream.devtools.eval_report import format_users_report

    path = write_reviews(tmp_path / "reviews.csv", list(CATEGORY_WORDS), 120)
    result = run_users_eval(path, encoder=WordHashEncoder(), ks=(4, 6), topics=2, users=30, limit=None, seed=2)
    report = format_users_report(result, k=6)
    assert "| k | online (published) | offline KMeans |" in report and "\n| 4 | " in report and "\n| 6 | " in report
    assert "### Clusters at k = 6" in report and "### Topics at k = 6" in report
    section = report.split("### Clusters at k = 6")[1].split("### Topics")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| cluster")]
    assert len(rows) >= 4
    assert all(row.rstrip(" |").split("|")[-1].strip() for row in rows), "every cluster shows masked examples"
    assert "generic keywords: kept → left out" in report


def test_stream_eval_users_command_prints_the_table(tmp_path: Path, tiny_model: Path, monkeypatch, capsys) -> None:
    from stream.cli import main

    monkeypatch.setenv("STREAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STREAM_DEVICE", "cpu")
    path = write_reviews(tmp_path / "reviews.csv", list(CATEGORY_WORDS), 60)
    assert main(["eval", str(path), "--users", "12", "--ks", "3,4", "--events", "5-8", "--limit", "0",
                 "--model", str(tiny_model), "--clusters", "4"]) == 0
    out = capsys.readouterr().out
    assert "| 3 | " in out and "| 4 | " in out and "### Clusters at k = 4" in out
    assert list((tmp_path / "cache" / "eval").glob("emb-*.npz")), "embeddings are cached for the next run"
