"""``stream eval``: how good are the published interest clusters on labelled reviews?

A streaming system publishes each event's cluster *when the event arrives*, from centres
that have seen only the past. So the number that matters is the quality of those
stream-time assignments, not of the final model. :func:`run_eval` replays a labelled CSV
through exactly the service's path (``stream.core.text.clean_many`` → encoder →
:class:`~stream.core.clustering.OnlineClusterer` warm start, then ``learn`` + ``assign`` per
micro-batch) and compares

* the **online** assignments at stream time (and the final model's, for reference),
* a full **offline** ``KMeans(n_init=10)`` on the very same embeddings — the best a
  k-means can do with this encoder, so ``online NMI / offline NMI`` isolates what
  streaming costs from what the encoder costs,

with NMI, ARI and V-measure against the labels, and shows per cluster its c-TF-IDF
keywords (:class:`~stream.core.keywords.ClusterTerms`), majority label and purity.

The CSV is sampled reproducibly and shuffled: labelled files are usually sorted by label,
and a stream in file order would be one long concept drift. Drift is measured on purpose
with ``drift=True``: half the labels, then the other half, then the first half again, with
and without count decay (``half_life_events``).

Embeddings are computed once per run (one pass, token-budget batches) and reused by every
stream replay and the offline baseline; ``cache_dir`` keeps them across runs too.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    v_measure_score,
)

from stream.config import Settings
from stream.core.keywords import ClusterTerms
from stream.core.text import clean_many
from stream.devtools.drift import DEFAULT_DRIFT_HALF_LIFE, DriftResult, drift_replay
from stream.devtools.feed import load_labelled_reviews
from stream.devtools.progress import encode_in_chunks
from stream.devtools.replay import sample_rows, stream_assignments
from stream.model_meta import model_prefixes
from stream.worker.encoder import (
    Encoder,
    encoder_version,
    load_encoder,
    resolve_model,
)


@dataclass(frozen=True)
class Scores:
    """Agreement of a clustering with the labels (1 = identical partition, ~0 = chance).

    NMI (arithmetic normalisation, sklearn's default) equals V-measure with beta = 1;
    both are reported because papers quote either name.

    >>> Scores.of(["a", "a", "b", "b"], [1, 1, 0, 0])
    Scores(nmi=1.0, ari=1.0, v_measure=1.0)
    """

    nmi: float
    ari: float
    v_measure: float

    @classmethod
    def of(cls, labels: Sequence[str], clusters: Sequence[int] | np.ndarray) -> Scores:
        return cls(
            nmi=round(float(normalized_mutual_info_score(labels, clusters)), 6),
            ari=round(float(adjusted_rand_score(labels, clusters)), 6),
            v_measure=round(float(v_measure_score(labels, clusters)), 6),
        )


@dataclass(frozen=True)
class ClusterSummary:
    """One online cluster as a person would read it."""

    cluster: int
    size: int
    majority_label: str
    purity: float  # share of the cluster's texts that carry the majority label
    keywords: list[tuple[str, float]]


@dataclass
class EvalResult:
    source: str
    texts: int
    labels: dict[str, int]  # label -> texts in the sample
    model: str
    prefix: str
    n_clusters: int
    batch_size: int
    warmup: int
    half_life_events: float
    reassignment_ratio: float
    seed: int
    online: Scores  # stream-time assignments: what the service publishes
    final: Scores  # final online model applied to every text
    offline: Scores  # KMeans(n_init=10) on the same embeddings
    clusters: list[ClusterSummary]
    timings: dict[str, float] = field(default_factory=dict)
    embeddings_cached: bool = False
    drift: DriftResult | None = None

    @property
    def ratio(self) -> float:
        """online / offline NMI: the share of the achievable quality that streaming keeps."""
        return self.online.nmi / self.offline.nmi if self.offline.nmi > 0 else float("nan")


def summarize_clusters(
    assignments: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    tokens: Sequence[Sequence[str]],
    n_clusters: int,
    top_n: int = 10,
) -> list[ClusterSummary]:
    """Size, majority label, purity and c-TF-IDF keywords of every non-empty cluster.

    >>> s = summarize_clusters([0, 0, 1], ["书", "书", "酒店"], [["作者"], ["作者", "情节"], ["前台"]], 2, top_n=1)
    >>> [(c.cluster, c.size, c.majority_label, c.purity, [w for w, _ in c.keywords]) for c in s]
    [(0, 2, '书', 1.0, ['作者']), (1, 1, '酒店', 1.0, ['前台'])]
    """
    terms = ClusterTerms.from_assignments(assignments, tokens)
    keywords = terms.top_keywords(top_n)
    by_cluster: dict[int, Counter[str]] = {}
    for cluster, label in zip(assignments, labels, strict=True):
        by_cluster.setdefault(int(cluster), Counter())[label] += 1
    out = []
    for cluster in range(n_clusters):
        counts = by_cluster.get(cluster)
        if not counts:
            continue
        size = sum(counts.values())
        label, top = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append(ClusterSummary(cluster, size, label, round(top / size, 4), keywords.get(cluster, [])))
    return out


def embed(
    encoder_inputs: Sequence[str],
    *,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, str, bool]:
    """Embeddings of ``encoder_inputs`` in one pass: (rows, encoder version, all came from cache).

    ``settings`` describe the service's encoder (loaded only when needed); tests pass
    ``encoder`` instead. With ``cache_dir``, rows are kept per text under a digest of the
    encoder version and its token limit, so later runs (other samples, other simulated
    users) encode only the texts not seen before, and a run that needs none skips loading.
    """
    if (settings is None) == (encoder is None):
        raise ValueError("give exactly one of settings (the service's encoder) or encoder")
    if encoder is not None:
        version, max_tokens = encoder.version, getattr(encoder, "max_tokens", None)
    else:
        assert settings is not None
        version, max_tokens = encoder_version(resolve_model(settings.model), settings.pooling), settings.max_tokens
    store: dict[str, np.ndarray] = {}
    path: Path | None = None
    if cache_dir is not None:
        path = Path(cache_dir).expanduser() / f"emb-{hashlib.sha256(f'{version}/max{max_tokens}'.encode()).hexdigest()[:16]}.npz"
        if path.is_file():
            with np.load(path) as data:
                store = dict(zip(data["keys"].tolist(), data["rows"]))
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in encoder_inputs]
    todo = list(dict.fromkeys(t for t, k in zip(encoder_inputs, keys) if k not in store))
    if todo:
        if encoder is None:
            assert settings is not None
            encoder = load_encoder(settings)
        rows = np.ascontiguousarray(encode_in_chunks(encoder, todo), dtype=np.float32)
        store.update((hashlib.sha1(t.encode("utf-8")).hexdigest(), r) for t, r in zip(todo, rows))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(list(store)), rows=np.stack(list(store.values())))
            tmp.replace(path)
    x = np.stack([store[k] for k in keys]) if keys else np.empty((0, 0), dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32), version, not todo


def run_eval(
    path: str | Path,
    *,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    n_clusters: int = 10,
    batch_size: int = 256,
    warmup: int | None = None,
    half_life_events: float = 0.0,
    reassignment_ratio: float = 0.01,
    limit: int | None = 5000,
    seed: int = 0,
    text_column: str = "review",
    label_column: str = "cat",
    prefix: str | None = None,
    drift: bool = False,
    drift_half_life: float | None = None,
    top_n: int = 10,
    cache_dir: str | Path | None = None,
) -> EvalResult:
    """Stream a labelled CSV through clean → encode → online clustering and score it.

    ``settings`` give the service's encoder (model, pooling, device, limits); tests pass ``encoder``.
    ``warmup`` defaults to 50 × ``n_clusters`` like the service. ``prefix`` defaults to
    ``"passage: "`` for e5 models. With ``drift=True`` the result also holds
    :class:`DriftResult` (decay half-life ``drift_half_life``, default ``half_life_events``
    or 500 events).
    """
    if (settings is None) == (encoder is None):
        raise ValueError("give exactly one of settings (the service's encoder) or encoder")
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be >= 2, got {n_clusters}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rows = load_labelled_reviews(path, text_column=text_column, label_column=label_column, sentiment_column=None)
    picked = [rows[i] for i in sample_rows(len(rows), limit, seed)]
    if len(picked) < n_clusters:
        raise ValueError(f"{path}: {len(picked)} texts, fewer than n_clusters={n_clusters}")
    labels = [label for _, label, _ in picked]
    cleaned = clean_many([text for text, _, _ in picked])
    timings["clean_s"] = time.perf_counter() - t0

    if prefix is None:
        model = getattr(encoder, "name", "") if encoder is not None else settings.model  # type: ignore[union-attr]
        prefix = model_prefixes(model, None if settings is None else settings.review_prefix).review
    t0 = time.perf_counter()
    x, version, cached = embed([prefix + c.text for c in cleaned], settings=settings, encoder=encoder, cache_dir=cache_dir)
    timings["encode_s"] = time.perf_counter() - t0

    warmup = 50 * n_clusters if warmup is None else warmup
    t0 = time.perf_counter()
    online, owner = stream_assignments(
        x, n_clusters=n_clusters, warmup=warmup, batch_size=batch_size, half_life_events=half_life_events,
        reassignment_ratio=reassignment_ratio, seed=seed,
    )
    final, _ = owner.clusterer.assign(x)
    timings["stream_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    offline = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(x)
    timings["offline_s"] = time.perf_counter() - t0

    drift_result = None
    if drift:
        t0 = time.perf_counter()
        drift_result = drift_replay(
            x, labels, offline, n_clusters=n_clusters, warmup=warmup, batch_size=batch_size,
            half_life_events=drift_half_life or half_life_events or DEFAULT_DRIFT_HALF_LIFE,
            reassignment_ratio=reassignment_ratio, seed=seed,
        )
        timings["drift_s"] = time.perf_counter() - t0

    return EvalResult(
        source=str(path),
        texts=len(picked),
        labels=dict(sorted(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0]))),
        model=version,
        prefix=prefix,
        n_clusters=n_clusters,
        batch_size=batch_size,
        warmup=min(max(warmup, n_clusters), len(picked)),
        half_life_events=half_life_events,
        reassignment_ratio=reassignment_ratio,
        seed=seed,
        online=Scores.of(labels, online),
        final=Scores.of(labels, final),
        offline=Scores.of(labels, offline),
        clusters=summarize_clusters(online, labels, [c.tokens for c in cleaned], n_clusters, top_n),
        timings={k: round(v, 2) for k, v in timings.items()},
        embeddings_cached=cached,
        drift=drift_result,
    )


