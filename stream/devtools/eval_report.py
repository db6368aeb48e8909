"""Markdown reports of ``stream eval`` (texts) and ``stream eval --users`` (simulated users)."""

from __future__ import annotations

from pathlib import Path

from stream.devtools.evaluate import EvalResult
from stream.devtools.users_eval import UsersResult, cluster_report


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


def format_users_report(result: UsersResult, k: int | None = None, keywords: int = 6) -> str:
    """Markdown: per-k top-interest precision (online vs offline), then the clusters and topics at ``k``."""
    r = result
    runs = {run.k: run for run in r.runs}
    shown = runs.get(k or 0, r.runs[-1])
    lines = [
        f"## stream eval --users: {Path(r.source).name}: {r.users} simulated users, "
        f"{r.events['review']} reviews + {r.events['search']} searches, {r.topics} topics",
        "",
        f"- model: `{r.model}`, prefixes {r.prefixes}; embeddings {'from cache' if r.embeddings_cached else 'encoded'}",
        "- top-interest precision: share of a user's top m clusters (m = their preferred categories) whose "
        "majority label is preferred; offline = KMeans(n_init=10) on the same embeddings, same stage 2",
        "",
        "- generic keywords: share of the clusters' top 5 keywords whose most common category holds under half of "
        "their uses, with generic review words (keywords.GENERIC_TERMS) kept / left out",
        "",
        "| k | online (published) | offline KMeans | online − offline | online topics | offline topics "
        "| generic keywords: kept → left out |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in r.runs:
        kept, left_out = r.generic.get(run.k, (float("nan"), float("nan")))
        lines.append(f"| {run.k} | {run.online.clusters:.3f} | {run.offline.clusters:.3f} | "
                     f"{run.online.clusters - run.offline.clusters:+.3f} | {run.online.topics:.3f} | {run.offline.topics:.3f} "
                     f"| {kept:.2f} → {left_out:.2f} |")
    lines += ["", f"### Clusters at k = {shown.k}", "",
              "| cluster | topic | texts | majority label | purity | keywords | examples (masked) |",
              "|---:|---:|---:|---|---:|---|---|"]
    for c in cluster_report(shown):
        lines.append(f"| {c['cluster']} | {c['topic']} | {c['texts']} | {_cell(c['majority'])} | {c['purity']:.2f} | "
                     f"{_cell(' '.join(c['keywords'][:keywords]))} | {_cell(' / '.join(c['examples']))} |")
    topic_words = shown.processor.learner.topic_keywords(keywords)
    members: dict[int, list[int]] = {}
    for cluster, topic in sorted(shown.processor.learner.topic_of.items()):
        members.setdefault(topic, []).append(cluster)
    lines += ["", f"### Topics at k = {shown.k}", "", "| topic | clusters | majority label | purity | keywords |",
              "|---:|---|---|---:|---|"]
    for topic, clusters in members.items():
        label, purity, _ = shown.topic_majority.get(topic, ("—", 0.0, 0))
        lines.append(f"| {topic} | {' '.join(map(str, clusters))} | {_cell(label)} | {purity:.2f} | "
                     f"{_cell(' '.join(topic_words.get(topic, [])))} |")
    return "\n".join(lines)
