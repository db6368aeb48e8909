"""``stream eval --users``: do a user's top interests say what they buy?

Simulated users from a labelled review CSV: each has 1-3 preferred categories, and each of
their events is, with probability ``preferred_share``, a review from a preferred category
(else from any category); a share of events are short search queries cut from such a
review (a few of its nouns: people search for things, not for opinions). Every text is used once. The events go through the service's own stages: records
-> :class:`~stream.worker.pipeline.BatchProcessor` (stage 1: decode, clean, encode, online
clusters, topics) -> :class:`~stream.core.stage2.ProfileStage` (stage 2) -> public profiles.

**Top-interest precision**: for each user, the share of their top m clusters
(m = number of preferred categories) whose majority label is one of their preferred
categories, averaged over users. The same updates with their clusters replaced by a full
offline ``KMeans(n_init=10)`` on the same embeddings, through the same stage 2, give the
offline ceiling. The same is measured for the coarse topics.

One module (about 350 lines) because simulation, streaming and scoring share the simulated
users and events and are only meaningful together.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from stream.config import Settings
from stream.core.clustering import OnlineClusterer
from stream.core.coarse import group_clusters
from stream.core.events import Limits
from stream.core.intake import Record
from stream.core.keywords import GENERIC_TERMS, MIN_KEYWORD_USERS, ClusterTerms
from stream.core.messages import Update, unpack_vector
from stream.core.model_owner import generic_clusters
from stream.core.profile import DAY_MS, Rules
from stream.core.stage2 import ProfileStage
from stream.core.text import clean, clean_many
from stream.devtools.evaluate import embed
from stream.devtools.feed import load_labelled_reviews
from stream.devtools.replay import sample_rows
from stream.model_meta import model_prefixes
from stream.worker.encoder import Encoder, load_encoder
from stream.worker.pipeline import KEYWORDS_PER_CLUSTER, BatchProcessor

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TOPICS = {"reviews": "review", "searches": "search"}


@dataclass(frozen=True)
class SimUser:
    user_id: str
    preferred: tuple[str, ...]


@dataclass(frozen=True)
class SimEvent:
    kind: str  # "review" or "search"
    user_id: str
    text: str
    label: str
    ts_ms: int


def query_from(text: str, rng: random.Random) -> str | None:
    """A short search query cut from a review: 1-3 consecutive nouns of its masked text (what people search).

    >>> query_from("这款手机的屏幕很清晰，电池也耐用", random.Random(0)) in {"手机", "屏幕", "电池", "手机 屏幕",
    ...     "屏幕 电池", "手机 屏幕 电池"}
    True
    """
    import jieba.posseg

    nouns = [w.word for w in jieba.posseg.lcut(clean(text).text)
             if w.flag.startswith("n") and len(w.word) >= 2 and w.word not in GENERIC_TERMS]
    if not nouns:
        return None
    n = min(len(nouns), rng.choice((1, 2, 3)))
    i = rng.randrange(len(nouns) - n + 1)
    return " ".join(nouns[i : i + n])


def simulate(
    rows: Sequence[tuple[str, str]],
    *,
    users: int,
    events: tuple[int, int] = (10, 30),
    preferred_share: float = 0.85,
    query_share: float = 0.3,
    days: int = 30,
    seed: int = 0,
) -> tuple[list[SimUser], list[SimEvent]]:
    """Users with 1-3 preferred categories and their events (each text used once), in time order."""
    rng = random.Random(seed)
    pools: dict[str, list[str]] = {}
    for text, label in rows:
        pools.setdefault(label, []).append(text)
    for pool in pools.values():
        rng.shuffle(pool)
    labels = sorted(pools)
    out_users: list[SimUser] = []
    out_events: list[SimEvent] = []
    for i in range(users):
        user = SimUser(f"sim-{i:05d}", tuple(rng.sample(labels, rng.choice((1, 2, 3)))))
        out_users.append(user)
        for _ in range(rng.randint(*events)):
            label = rng.choice(user.preferred) if rng.random() < preferred_share else rng.choice(labels)
            if not pools[label]:
                continue
            text: str | None = pools[label].pop()
            kind = "review"
            if rng.random() < query_share:
                text, kind = query_from(text, rng), "search"
            if text:
                out_events.append(SimEvent(kind, user.user_id, text, label, START_MS + rng.randrange(days * DAY_MS)))
    out_events.sort(key=lambda e: e.ts_ms)
    return out_users, out_events


def records(events: Sequence[SimEvent]) -> list[Record]:
    """The events as raw input records (the service's contracts), offsets in time order per topic."""
    out = []
    for i, e in enumerate(events):
        body: dict[str, Any] = {"event_id": f"e{i}", "user_id": e.user_id, "ts": e.ts_ms}
        if e.kind == "review":
            body.update(item_id=f"item-{i}", text=e.text)
        else:
            body.update(query=e.text)
        topic = "reviews" if e.kind == "review" else "searches"
        out.append(Record(topic, 0, i, e.user_id.encode(), json.dumps(body, ensure_ascii=False).encode()))
    return out


class LookupEncoder:
    """Embeddings computed once (and cached) by exact input; a miss is encoded by ``fallback``."""

    def __init__(self, table: Mapping[str, np.ndarray], version: str, fallback: Callable[[list[str]], np.ndarray]) -> None:
        self.table = dict(table)
        self.version = version
        self.fallback = fallback
        self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.table]
        if missing:
            self.misses += len(missing)
            self.table.update(zip(missing, self.fallback(missing)))
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


@dataclass
class Precision:
    clusters: float
    topics: float


@dataclass
class UsersRun:
    """One k: online and offline precision, and the online model for the per-cluster report."""

    k: int
    online: Precision
    offline: Precision
    processor: BatchProcessor
    majority: dict[int, tuple[str, float, int]]  # cluster -> (majority label, purity, texts)
    topic_majority: dict[int, tuple[str, float, int]] = field(default_factory=dict)


def majority_labels(assigned: Mapping[int, Sequence[str]]) -> dict[int, tuple[str, float, int]]:
    """(majority label, its share, texts) per group.

    >>> majority_labels({0: ["书", "书", "酒店"]})
    {0: ('书', 0.6667, 3)}
    """
    out = {}
    for group, labels in assigned.items():
        label, n = min(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0]))
        out[group] = (label, round(n / len(labels), 4), len(labels))
    return out


def precision(views: Mapping[str, Mapping[str, Any]], users: Sequence[SimUser], majority: Mapping[int, str],
              section: str = "top_clusters", key: str = "cluster") -> float:
    """Mean over users of the share of their top m (= their preferred categories) entries whose label is preferred.

    >>> v = {"u": {"interests": {"top_clusters": [{"cluster": 1}, {"cluster": 2}]}}}
    >>> precision(v, [SimUser("u", ("书", "酒店"))], {1: "书", 2: "水果"})
    0.5
    """
    scores = []
    for user in users:
        view = views.get(user.user_id)
        top = (view or {}).get("interests", {}).get(section, [])[: len(user.preferred)]
        if top:
            scores.append(sum(majority.get(entry[key]) in user.preferred for entry in top) / len(top))
    return round(float(np.mean(scores)), 4) if scores else float("nan")


def run_users(
    users: Sequence[SimUser],
    events: Sequence[SimEvent],
    encoder: Encoder,
    *,
    k: int,
    topics: int,
    prefixes: Mapping[str, str],
    warmup: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    limits: Limits | None = None,
) -> UsersRun:
    """Stream the events through stage 1 and stage 2 at ``k``; score online and offline."""
    clusterer = OnlineClusterer(k=k, warmup=min(warmup or 50 * k, len(events)), seed=seed)
    processor = BatchProcessor(encoder, clusterer, kind_of_topic=TOPICS, prefixes=prefixes, topics=topics,
                               limits=limits or Limits(max_text_chars=2000, reject_text_chars=100_000, max_future_ms=0))
    recs = records(events)
    wall_ms = max(e.ts_ms for e in events) + DAY_MS
    updates: list[Update] = []
    for start in range(0, len(recs), batch_size):
        updates += processor.process(recs[start : start + batch_size], wall_ms=wall_ms).updates
    if processor.learner.pending:
        updates += processor.process([], force_fit=True, wall_ms=wall_ms).updates
    label_of = {r.offset: e.label for r, e in zip(recs, events)}
    texts = [u for u in updates if u["cluster"] is not None]
    online = _score(users, texts, label_of, wall_ms)
    x = np.stack([unpack_vector(u["embedding"]) for u in texts])
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    topic_of = group_clusters(kmeans.cluster_centers_, topics, np.bincount(kmeans.labels_, minlength=k))
    generic = generic_clusters(ClusterTerms.from_assignments(kmeans.labels_, [u["data"].get("tokens", []) for u in texts]))
    offline_topics = [topic_of[c] for c in range(k)]
    relabelled = [{**u, "cluster": int(c), "topic_of": offline_topics, "generic": int(c) in generic}
                  for u, c in zip(texts, kmeans.labels_)]
    offline = _score(users, relabelled, label_of, wall_ms)
    by_cluster: dict[int, list[str]] = {}
    by_topic: dict[int, list[str]] = {}
    for u in texts:
        by_cluster.setdefault(u["cluster"], []).append(label_of[u["offset"]])
        by_topic.setdefault(processor.learner.topic_of.get(u["cluster"], u["cluster"]), []).append(label_of[u["offset"]])
    return UsersRun(k, online[0], offline[0], processor, majority_labels(by_cluster), majority_labels(by_topic))


def _score(users: Sequence[SimUser], updates: Sequence[Mapping[str, Any]], label_of: Mapping[int, str],
           as_of: int) -> tuple[Precision, dict[str, dict[str, Any]]]:
    stage = ProfileStage({}, {}, Rules(), clock_ms=lambda: as_of)
    by_cluster: dict[int, list[str]] = {}
    by_topic: dict[int, list[str]] = {}
    for u in updates:
        stage.apply_update(u, partition=0)  # type: ignore[arg-type]
        by_cluster.setdefault(u["cluster"], []).append(label_of[u["offset"]])
    final_topics = updates[-1]["topic_of"] if updates else []  # topics as the newest grouping defines them
    for u in updates:
        by_topic.setdefault(final_topics[u["cluster"]], []).append(label_of[u["offset"]])
    views = {user.user_id: v for user in users if (v := stage.view(user.user_id, as_of)) is not None}
    clusters = {c: m[0] for c, m in majority_labels(by_cluster).items()}
    topics = {t: m[0] for t, m in majority_labels(by_topic).items()}
    return Precision(precision(views, users, clusters), precision(views, users, topics, "topics", "topic")), views


def generic_share(run: UsersRun, token_labels: Mapping[str, Counter[str]], generic_out: bool, n: int = 5) -> float:
    """Share of the clusters' top ``n`` keywords that say how rather than what: tokens whose most
    common category holds less than half of their uses in the labelled texts.
    """
    exclude = GENERIC_TERMS if generic_out else frozenset()
    assert run.processor.owner is not None
    ranked = run.processor.owner.terms.top_keywords(n, min_users=MIN_KEYWORD_USERS, exclude=exclude)
    words = [w for kws in ranked.values() for w, _ in kws]
    if not words:
        return float("nan")
    generic = [w for w in words if (c := token_labels.get(w)) and max(c.values()) / sum(c.values()) < 0.5]
    return round(len(generic) / len(words), 4)


def token_labels(events: Sequence[SimEvent]) -> dict[str, Counter[str]]:
    """How often each keyword token occurs per category label."""
    out: dict[str, Counter[str]] = {}
    for e, c in zip(events, clean_many([e.text for e in events])):
        for token in c.tokens:
            out.setdefault(token, Counter())[e.label] += 1
    return out


def cluster_report(run: UsersRun, snippets: int = 3) -> list[dict[str, Any]]:
    """Per cluster, as a marketer reads it: topic, size, majority label, keywords, masked snippets."""
    learner = run.processor.learner
    keywords = learner.keywords(KEYWORDS_PER_CLUSTER * 2)
    examples = learner.view.examples if learner.view else {}
    return [
        {"cluster": c, "topic": learner.topic_of.get(c, c), "texts": n, "majority": label, "purity": purity,
         "keywords": keywords.get(c, []), "examples": list(examples.get(c, []))[:snippets]}
        for c, (label, purity, n) in sorted(run.majority.items())
    ]


@dataclass
class UsersResult:
    source: str
    users: int
    events: Counter[str]
    model: str
    prefixes: dict[str, str]
    topics: int
    runs: list[UsersRun]
    embeddings_cached: bool
    encoder_misses: int
    generic: dict[int, tuple[float, float]] = field(default_factory=dict)  # k -> generic keyword share (kept, left out)


def run_users_eval(
    path: str | Path,
    *,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    ks: Sequence[int] = (10, 20, 30, 40),
    topics: int = 6,
    users: int = 200,
    events_per_user: tuple[int, int] = (10, 30),
    limit: int | None = 6000,
    seed: int = 0,
    text_column: str = "review",
    label_column: str = "cat",
    batch_size: int = 256,
    cache_dir: str | Path | None = None,
) -> UsersResult:
    """Simulate users from ``limit`` sampled rows of the CSV and score their top interests at every k.

    ``settings`` give the service's encoder and prefixes; tests pass ``encoder`` (no prefixes).
    Embeddings are computed once for all k (and cached under ``cache_dir``).
    """
    if (settings is None) == (encoder is None):
        raise ValueError("give exactly one of settings (the service's encoder) or encoder")
    rows = load_labelled_reviews(path, text_column=text_column, label_column=label_column, sentiment_column=None)
    picked = [rows[i][:2] for i in sample_rows(len(rows), limit, seed)]
    sim_users, events = simulate(picked, users=users, events=events_per_user, seed=seed)
    prefixes = {"review": "", "search": ""}
    if settings is not None:
        p = model_prefixes(settings.model, settings.review_prefix, settings.query_prefix)
        prefixes = {"review": p.review, "search": p.search}
    inputs = [prefixes[e.kind] + c.text for e, c in zip(events, clean_many([e.text for e in events]))]
    x, version, cached = embed(inputs, settings=settings, encoder=encoder, cache_dir=cache_dir)
    loaded: list[Encoder] = [encoder] if encoder is not None else []

    def fallback(texts: list[str]) -> np.ndarray:
        if not loaded:
            assert settings is not None
            loaded.append(load_encoder(settings))
        return loaded[0].encode(texts)

    lookup = LookupEncoder(dict(zip(inputs, x)), version, fallback)
    runs = [run_users(sim_users, events, lookup, k=k, topics=topics, prefixes=prefixes, batch_size=batch_size, seed=seed)
            for k in ks]
    labels = token_labels(events)
    generic = {run.k: (generic_share(run, labels, False), generic_share(run, labels, True)) for run in runs}
    return UsersResult(str(path), len(sim_users), Counter(e.kind for e in events), version, prefixes, topics, runs,
                       cached, lookup.misses, generic)
