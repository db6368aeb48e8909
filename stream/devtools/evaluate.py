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
import random
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

from stream.core.clustering import OnlineClusterer
from stream.core.keywords import ClusterTerms
from stream.core.text import clean_many
from stream.devtools.feed import load_labelled_reviews
from stream.worker.encoder import (
    Encoder,
    TransformerEncoder,
    model_fingerprint,
    resolve_model,
)

E5_PREFIX = "passage: "
DEFAULT_DRIFT_HALF_LIFE = 500.0  # events; used for the "with decay" replay when half_life_events is 0


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


@dataclass(frozen=True)
class PhaseScore:
    """NMI within one drift phase, at stream time."""

    phase: str
    labels: tuple[str, ...]
    texts: int
    offline_nmi: float  # offline KMeans on all embeddings, restricted to this phase's texts
    nmi_no_decay: float
    nmi_decay: float
    settled_no_decay: float  # second half of the phase: after the model had time to adapt
    settled_decay: float


@dataclass(frozen=True)
class DriftResult:
    half_life_events: float
    phases: list[PhaseScore]

    def switches(self) -> list[tuple[str, str, float]]:
        """Per switch (phases 2 and 3): (phase, better setting, NMI gain of decay over no decay).

        A gain within ±0.01 NMI is called a tie ("either").
        """
        out = []
        for p in self.phases[1:]:
            gain = round(p.nmi_decay - p.nmi_no_decay, 4)
            better = "either" if abs(gain) < 0.01 else "decay" if gain > 0 else "no decay"
            out.append((p.phase, better, gain))
        return out

    @property
    def recovers(self) -> str:
        """One sentence: which setting publishes better clusters after each switch.

        >>> p = lambda name, plain, decay: PhaseScore(name, ("a",), 10, 0.5, plain, decay, plain, decay)
        >>> DriftResult(500.0, [p("1: A", 0.4, 0.4), p("2: B", 0.42, 0.47), p("3: A again", 0.36, 0.30)]).recovers
        'A→B: decay (+0.050 NMI); B→A: no decay (-0.060 NMI)'
        """
        names = ("A→B", "B→A")
        return "; ".join(f"{names[i] if i < 2 else phase}: {better} ({gain:+.3f} NMI)"
                         for i, (phase, better, gain) in enumerate(self.switches()))


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


def default_prefix(model_name: str) -> str:
    """e5 models were trained with ``passage: `` before documents; others need nothing.

    >>> default_prefix("multilingual-e5-small"), default_prefix("bge-small-zh-v1.5")
    ('passage: ', '')
    """
    return E5_PREFIX if "e5" in model_name.lower() else ""


def sample_rows(n: int, limit: int | None, seed: int) -> list[int]:
    """``limit`` row indices out of ``n`` (all if ``limit`` is None or 0), reproducible and shuffled.

    >>> sample_rows(5, None, 0) == sample_rows(5, 0, 0) and sorted(sample_rows(5, None, 0)) == [0, 1, 2, 3, 4]
    True
    >>> len(sample_rows(100, 7, 1)), sample_rows(100, 7, 1) == sample_rows(100, 7, 1)
    (7, True)
    """
    k = n if not limit or limit >= n else limit
    return random.Random(seed).sample(range(n), k)


def stream_assignments(
    x: np.ndarray,
    *,
    n_clusters: int,
    warmup: int,
    batch_size: int,
    half_life_events: float = 0.0,
    reassignment_ratio: float = 0.01,
    seed: int = 0,
) -> tuple[np.ndarray, OnlineClusterer]:
    """Replay embeddings in order as the service does; returns each row's cluster at stream time.

    Rows of the warm-up buffer get the warm-started centres' clusters (they are published
    right after the first fit); afterwards each micro-batch is learned, then assigned,
    as ``BatchProcessor.process`` does.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(x)
    warmup = min(max(warmup, n_clusters), n)
    clusterer = OnlineClusterer(
        k=n_clusters, warmup=warmup, seed=seed, half_life_events=half_life_events, reassignment_ratio=reassignment_ratio
    )
    out = np.empty(n, dtype=np.int64)
    clusterer.warm_start(x[:warmup])
    out[:warmup], _ = clusterer.assign(x[:warmup])
    for start in range(warmup, n, batch_size):
        batch = x[start : start + batch_size]
        clusterer.learn(batch)
        out[start : start + len(batch)], _ = clusterer.assign(batch)
    return out, clusterer


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
    model: str | None = None,
    encoder: Encoder | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    batch_tokens: int = 4096,
    max_tokens: int = 256,
    torch_threads: int = 0,
) -> tuple[np.ndarray, str, bool]:
    """Embeddings of ``encoder_inputs`` in one pass: (rows, encoder version, came from cache).

    With ``cache_dir``, rows are stored under a digest of the model fingerprint, the
    encoder settings and the exact inputs, so a second run skips both loading and encoding.
    """
    if (model is None) == (encoder is None):
        raise ValueError("give exactly one of model (a path or cached name) or encoder")
    if encoder is not None:
        version = encoder.version
    else:
        path = resolve_model(model)
        version = f"{path.name}@{model_fingerprint(path)}/mean/max{max_tokens}"
    cache: Path | None = None
    if cache_dir is not None:
        digest = hashlib.sha256(version.encode())
        for text in encoder_inputs:
            digest.update(text.encode("utf-8") + b"\0")
        cache = Path(cache_dir).expanduser() / f"emb-{digest.hexdigest()[:24]}.npy"
        if cache.is_file():
            return np.load(cache), version, True
    if encoder is None:
        encoder = TransformerEncoder(
            model, device=device, max_tokens=max_tokens, batch_tokens=batch_tokens, torch_threads=torch_threads
        )
    x = np.ascontiguousarray(encoder.encode(list(encoder_inputs)), dtype=np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, x)
        tmp.replace(cache)
    return x, version, False


def run_eval(
    path: str | Path,
    *,
    model: str | None = None,
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
    device: str = "auto",
    batch_tokens: int = 4096,
    max_tokens: int = 256,
    torch_threads: int = 0,
) -> EvalResult:
    """Stream a labelled CSV through clean → encode → online clustering and score it.

    ``model`` is a local model directory (or cached name); tests pass ``encoder`` instead.
    ``warmup`` defaults to 50 × ``n_clusters`` like the service. ``prefix`` defaults to
    ``"passage: "`` for e5 models. With ``drift=True`` the result also holds
    :class:`DriftResult` (decay half-life ``drift_half_life``, default ``half_life_events``
    or 500 events).
    """
    if (model is None) == (encoder is None):
        raise ValueError("give exactly one of model (a path or cached name) or encoder")
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
        name = getattr(encoder, "name", "") if encoder is not None else resolve_model(model).name  # type: ignore[arg-type]
        prefix = default_prefix(name)
    t0 = time.perf_counter()
    x, version, cached = embed(
        [prefix + c.text for c in cleaned], model=model, encoder=encoder, cache_dir=cache_dir,
        device=device, batch_tokens=batch_tokens, max_tokens=max_tokens, torch_threads=torch_threads,
    )
    timings["encode_s"] = time.perf_counter() - t0

    warmup = 50 * n_clusters if warmup is None else warmup
    t0 = time.perf_counter()
    online, clusterer = stream_assignments(
        x, n_clusters=n_clusters, warmup=warmup, batch_size=batch_size, half_life_events=half_life_events,
        reassignment_ratio=reassignment_ratio, seed=seed,
    )
    final, _ = clusterer.assign(x)
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


def drift_phases(labels: Sequence[str]) -> list[tuple[str, tuple[str, ...], list[int]]]:
    """Stream order for a drift replay: labels A (first half, sorted), then B, then A again.

    The texts of A are split in two halves, so phase 3 brings back the *topics* of phase 1
    with texts the model has not seen.

    >>> [(name, ls, idx) for name, ls, idx in drift_phases(["x", "y", "x", "z", "x", "y"])]
    [('1: A', ('x',), [0]), ('2: B', ('y', 'z'), [1, 3, 5]), ('3: A again', ('x',), [2, 4])]
    """
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        raise ValueError("a drift replay needs at least two labels")
    a = tuple(distinct[: len(distinct) // 2])
    b = tuple(distinct[len(distinct) // 2 :])
    in_a = [i for i, label in enumerate(labels) if label in a]
    in_b = [i for i, label in enumerate(labels) if label not in a]
    half = len(in_a) // 2
    return [("1: A", a, in_a[:half]), ("2: B", b, in_b), ("3: A again", a, in_a[half:])]


def drift_replay(
    x: np.ndarray,
    labels: Sequence[str],
    offline: np.ndarray,
    *,
    n_clusters: int,
    warmup: int,
    batch_size: int,
    half_life_events: float,
    reassignment_ratio: float = 0.01,
    seed: int = 0,
) -> DriftResult:
    """Replay A → B → A with and without decay; NMI per phase of the stream-time assignments."""
    phases = drift_phases(labels)
    order = np.array([i for _, _, idx in phases for i in idx], dtype=np.int64)
    warmup = min(warmup, len(phases[0][2]))  # the warm start sees phase 1 only, as a real deployment would
    runs = {
        hl: stream_assignments(
            x[order], n_clusters=n_clusters, warmup=warmup, batch_size=batch_size, half_life_events=hl,
            reassignment_ratio=reassignment_ratio, seed=seed,
        )[0]
        for hl in (0.0, half_life_events)
    }
    y = np.asarray(labels, dtype=object)[order]
    off = offline[order]
    out = []
    start = 0
    for name, phase_labels, idx in phases:
        end = start + len(idx)
        mid = start + len(idx) // 2

        def nmi(pred: np.ndarray, lo: int, hi: int) -> float:
            return round(float(normalized_mutual_info_score(y[lo:hi], pred[lo:hi])), 4) if hi > lo else float("nan")

        out.append(
            PhaseScore(
                phase=name,
                labels=phase_labels,
                texts=len(idx),
                offline_nmi=nmi(off, start, end),
                nmi_no_decay=nmi(runs[0.0], start, end),
                nmi_decay=nmi(runs[half_life_events], start, end),
                settled_no_decay=nmi(runs[0.0], mid, end),
                settled_decay=nmi(runs[half_life_events], mid, end),
            )
        )
        start = end
    return DriftResult(half_life_events=half_life_events, phases=out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_report(result: EvalResult, keywords: int = 8) -> str:
    """Markdown: scores table, per-cluster keywords, and the drift table when there is one."""
    r = result
    hl = f"{r.half_life_events:g} events" if r.half_life_events else "none"
    lines = [
        f"## stream eval: {Path(r.source).name}: {r.texts} texts, {len(r.labels)} labels, k={r.n_clusters}",
        "",
        f"- model: `{r.model}`, prefix {r.prefix!r}; embeddings {'from cache' if r.embeddings_cached else 'encoded'}",
        f"- stream: warm start on {r.warmup}, micro-batches of {r.batch_size}, half-life {hl}, "
        f"reassignment ratio {r.reassignment_ratio:g}, seed {r.seed}",
        "- labels: " + ", ".join(f"{k} {v}" for k, v in r.labels.items()),
        "- time: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in r.timings.items()),
        "",
        "| clustering | NMI | ARI | V-measure |",
        "|---|---:|---:|---:|",
    ]
    for name, s in (
        ("online, at stream time (published)", r.online),
        ("online, final model", r.final),
        ("offline KMeans (n_init=10), same embeddings", r.offline),
    ):
        lines.append(f"| {name} | {s.nmi:.3f} | {s.ari:.3f} | {s.v_measure:.3f} |")
    lines += [
        "",
        f"**online / offline NMI = {r.ratio:.3f}** (target ≥ 0.9)"
        + ("" if r.ratio >= 0.9 else
           f"; below target: streaming keeps the local optimum of the warm start on {r.warmup} texts, "
           f"try a larger warmup (≥ {100 * r.n_clusters}, i.e. 100·k)"),
        "",
        "| cluster | size | majority label | purity | keywords (c-TF-IDF) |",
        "|---:|---:|---|---:|---|",
    ]
    for c in r.clusters:
        words = " ".join(w for w, _ in c.keywords[:keywords])
        lines.append(f"| {c.cluster} | {c.size} | {_cell(c.majority_label)} | {c.purity:.2f} | {_cell(words)} |")
    if r.drift is not None:
        d = r.drift
        lines += [
            "",
            f"### Drift: A → B → A (stream-time NMI within each phase; decay half-life {d.half_life_events:g} events)",
            "",
            "| phase | labels | texts | offline | no decay | no decay, 2nd half | decay | decay, 2nd half |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for p in d.phases:
            lines.append(
                f"| {p.phase} | {_cell(' '.join(p.labels))} | {p.texts} | {p.offline_nmi:.3f} | {p.nmi_no_decay:.3f} "
                f"| {p.settled_no_decay:.3f} | {p.nmi_decay:.3f} | {p.settled_decay:.3f} |"
            )
        lines += [
            "",
            f"Recovers after the switch (stream-time NMI, decay minus no decay): **{d.recovers}**. Decay lets "
            "centres follow new topics; without it they keep the old ones, which helps when those come back.",
        ]
    return "\n".join(lines)
