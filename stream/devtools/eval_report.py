"""Markdown report of ``stream eval``."""

from __future__ import annotations

from pathlib import Path

from stream.devtools.evaluate import EvalResult


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
