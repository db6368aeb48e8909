"""Tests for stream.devtools.evaluate on small generated CSVs: structure with a real (tiny) transformer,
quality with a deterministic fake encoder whose embeddings depend on the category words."""

from __future__ import annotations

import csv
import random
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans

from stream.config import Settings
from stream.core.text import clean_many, stopwords
from stream.devtools.drift import drift_phases
from stream.devtools.eval_report import format_report
from stream.devtools.evaluate import Scores, run_eval
from stream.devtools.replay import sample_rows, stream_assignments
from stream.worker.encoder import TransformerEncoder

CATEGORY_WORDS = {
    "手机": ("屏幕", "电池", "信号", "充电", "像素", "摄像头"),
    "酒店": ("房间", "前台", "早餐", "床单", "服务员", "隔音"),
    "水果": ("新鲜", "果肉", "苹果", "橙子", "口感", "水分"),
    "图书": ("作者", "情节", "印刷", "章节", "插图", "译者"),
}
FILLERS = ("这个", "很", "也", "非常", "感觉", "还", "都", "就是", "比较", "有点", "觉得")  # all stopwords
ALL_WORDS = {w for ws in CATEGORY_WORDS.values() for w in ws}


def write_reviews(path: Path, categories: Sequence[str], per_category: int, *, seed: int = 0,
                  text_column: str = "review", label_column: str = "cat") -> Path:
    """Synthetic labelled reviews, sorted by category like the real file: three category words among stopwords."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([label_column, text_column])
        for cat in categories:
            for _ in range(per_category):
                w = rng.sample(CATEGORY_WORDS[cat], 3)
                fill = rng.choices(FILLERS, k=3)
                writer.writerow([cat, f"{fill[0]}{w[0]}{fill[1]}{w[1]}，{fill[2]}{w[2]}"])
    return path


class WordHashEncoder:
    """Deterministic fake encoder: a fixed pseudo-random vector per category word (and, weaker, per other character).

    Texts of one category share category words, so they cluster the way a good sentence
    encoder's would; the stopword fillers add a small component common to all texts.
    """

    dim = 64
    version = "word-hash@test"
    device = "cpu"

    def __init__(self, name: str = "word-hash") -> None:
        self.name = name
        self.inputs: list[str] = []

    @staticmethod
    def _vector(token: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(token.encode())).standard_normal(WordHashEncoder.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.inputs.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            rest = text
            for word in ALL_WORDS:
                if word in rest:
                    out[row] += self._vector(word)
                    rest = rest.replace(word, "")
            for ch in rest:
                out[row] += 0.2 * self._vector(ch)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture
def reviews3(tmp_path: Path) -> Path:
    return write_reviews(tmp_path / "reviews.csv", ["手机", "酒店", "水果"], 40)


def in_range(s: Scores) -> bool:
    return 0.0 <= s.nmi <= 1.0 and -1.0 <= s.ari <= 1.0 and 0.0 <= s.v_measure <= 1.0


def test_tiny_model_run_has_consistent_structure(reviews3: Path, tiny_model: Path, tmp_path: Path) -> None:
    result = run_eval(reviews3, settings=Settings(model=str(tiny_model), device="cpu"), n_clusters=3, batch_size=16, limit=None, seed=1,
                      cache_dir=tmp_path / "cache")
    assert result.texts == 120 and result.labels == {"手机": 40, "水果": 40, "酒店": 40}
    assert result.warmup == 120 and result.prefix == ""  # 50 x k like the service, capped at the texts; not e5
    assert all(in_range(s) for s in (result.online, result.final, result.offline))
    assert result.ratio == pytest.approx(result.online.nmi / result.offline.nmi)

    # The offline baseline is KMeans(n_init=10) on the very embeddings the stream saw, in stream order.
    rows = list(csv.DictReader(reviews3.open(encoding="utf-8")))
    picked = [rows[i] for i in sample_rows(len(rows), None, 1)]
    x = TransformerEncoder(str(tiny_model), device="cpu").encode([c.text for c in clean_many([r["review"] for r in picked])])
    offline = KMeans(n_clusters=3, n_init=10, random_state=1).fit_predict(x)
    assert result.offline == Scores.of([r["cat"] for r in picked], offline)

    # Random weights make the clusters meaningless, but keywords are still category words, never stopwords.
    assert sum(c.size for c in result.clusters) == 120
    for c in result.clusters:
        words = {w for w, _ in c.keywords}
        assert words and words <= ALL_WORDS and not words & stopwords()
        assert c.majority_label in result.labels and 1 / 3 <= c.purity <= 1.0

    again = run_eval(reviews3, settings=Settings(model=str(tiny_model), device="cpu"), n_clusters=3, batch_size=16, limit=None, seed=1,
                     cache_dir=tmp_path / "cache")
    assert again.embeddings_cached and not result.embeddings_cached
    assert (again.online, again.offline) == (result.online, result.offline)

    report = format_report(result)
    assert "| online, at stream time (published) |" in report and "online / offline NMI" in report
    assert report.count("\n| ") >= 3 + 1 + len(result.clusters)


def test_fake_encoder_streaming_keeps_offline_quality(reviews3: Path) -> None:
    encoder = WordHashEncoder()
    result = run_eval(reviews3, encoder=encoder, n_clusters=3, batch_size=16, warmup=30, limit=None, seed=0)
    assert result.offline.nmi > 0.8
    assert result.ratio >= 0.9
    assert len(encoder.inputs) == 120  # encoded once, in one pass
    for c in result.clusters:
        assert c.purity > 0.8
        assert {w for w, _ in c.keywords[:3]} <= set(CATEGORY_WORDS[c.majority_label])


def test_e5_prefix_default_and_override(reviews3: Path) -> None:
    e5 = WordHashEncoder(name="multilingual-e5-small")
    assert run_eval(reviews3, encoder=e5, n_clusters=3, limit=30).prefix == "passage: "
    assert all(t.startswith("passage: ") for t in e5.inputs)
    other = WordHashEncoder(name="multilingual-e5-small")
    run_eval(reviews3, encoder=other, n_clusters=3, limit=30, prefix="")
    assert not any(t.startswith("passage: ") for t in other.inputs)


def test_limit_samples_reproducibly_across_categories(reviews3: Path) -> None:
    a = run_eval(reviews3, encoder=WordHashEncoder(), n_clusters=3, limit=50, seed=7)
    b = run_eval(reviews3, encoder=WordHashEncoder(), n_clusters=3, limit=50, seed=7)
    assert a.texts == 50 and a.labels == b.labels and len(a.labels) == 3  # shuffled: not the first 50 rows
    assert (a.online, a.offline) == (b.online, b.offline)


def test_custom_columns_and_errors(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "custom.csv", ["手机", "酒店"], 15, text_column="text", label_column="category")
    result = run_eval(path, encoder=WordHashEncoder(), n_clusters=2, text_column="text", label_column="category")
    assert result.texts == 30
    with pytest.raises(ValueError, match="missing column"):
        run_eval(path, encoder=WordHashEncoder(), n_clusters=2)
    with pytest.raises(ValueError, match="fewer than n_clusters"):
        run_eval(path, encoder=WordHashEncoder(), n_clusters=5, text_column="text", label_column="category", limit=4)
    with pytest.raises(ValueError, match="exactly one"):
        run_eval(path, n_clusters=2, text_column="text", label_column="category")


def test_stream_assignments_follow_the_service_order() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 8, dtype=np.float32)
    x = centres[rng.integers(0, 4, 300)] + 0.05 * rng.standard_normal((300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels, learner = stream_assignments(x, n_clusters=4, warmup=40, batch_size=32)
    clusterer = learner.clusterer
    assert labels.shape == (300,) and set(labels) <= set(range(4))
    assert clusterer.seen == 300 and clusterer.updates == 1 + -(-260 // 32)
    with pytest.raises(ValueError):
        stream_assignments(x, n_clusters=4, warmup=40, batch_size=0)


def test_drift_replay_reports_each_phase(tmp_path: Path) -> None:
    path = write_reviews(tmp_path / "drift.csv", list(CATEGORY_WORDS), 30)
    result = run_eval(path, encoder=WordHashEncoder(), n_clusters=4, batch_size=8, limit=None, drift=True,
                      drift_half_life=40)
    drift = result.drift
    assert drift is not None and drift.half_life_events == 40
    assert [p.phase for p in drift.phases] == ["1: A", "2: B", "3: A again"]
    a, b = drift.phases[0].labels, drift.phases[1].labels
    assert a == drift.phases[2].labels and not set(a) & set(b) and set(a) | set(b) == set(CATEGORY_WORDS)
    assert sum(p.texts for p in drift.phases) == 120
    for p in drift.phases:
        assert all(0.0 <= v <= 1.0 for v in (p.offline_nmi, p.nmi_no_decay, p.nmi_decay, p.settled_decay,
                                             p.settled_no_decay))
    assert drift.recovers
    report = format_report(result)
    assert "### Drift" in report and "Recovers after the switch" in report


def test_drift_phases_split_labels_in_halves() -> None:
    phases = drift_phases(["b", "a", "c", "d", "a", "c"])
    assert [(name, labels) for name, labels, _ in phases] == [("1: A", ("a", "b")), ("2: B", ("c", "d")),
                                                              ("3: A again", ("a", "b"))]
    assert sorted(i for _, _, idx in phases for i in idx) == list(range(6))
    with pytest.raises(ValueError):
        drift_phases(["a", "a"])
