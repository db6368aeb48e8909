"""Ratios and the Markdown table: the part of a run meant to be pasted into the README."""

from __future__ import annotations

from typing import Any

SHORT_STAGE = {
    "decode+validate": "decode",
    "clean (incl. jieba)": "clean+jieba",
    "tokenize": "tokenize",
    "profile update": "profile",
    "serialise public view": "view JSON",
}


def ratios(encoder: dict[str, Any], e2e: dict[str, Any] | None) -> dict[str, float | None]:
    """Same-run ratios: they survive machine drift that makes absolute throughput incomparable across runs."""
    budget = encoder["token_budget"]["texts_per_s"]
    encoder_cpu_us = 1e6 * encoder["token_budget"]["cpu_seconds"] / encoder["token_budget"]["texts"]
    naive = e2e["naive"] if e2e else None
    return {
        "pipeline_vs_encoder": e2e["events_per_s"] / budget if e2e else None,
        # the naive loop: throughput as pipeline / naive (higher is better), latency as pipeline / naive (lower is)
        "pipeline_vs_naive": e2e["events_per_s"] / naive["events_per_s"] if naive else None,
        "p50_vs_naive": e2e["latency_ms"]["p50"] / naive["latency_ms"]["p50"] if naive else None,
        "p99_vs_naive": e2e["latency_ms"]["p99"] / naive["latency_ms"]["p99"] if naive else None,
        # the same offered load (the naive loop's half-load rate) for both
        "p50_vs_naive_same_rate": e2e["same_rate_latency_ms"]["p50"] / naive["latency_ms"]["p50"] if naive else None,
        "p99_vs_naive_same_rate": e2e["same_rate_latency_ms"]["p99"] / naive["latency_ms"]["p99"] if naive else None,
        # CPU time per event survives contention from other processes, which wall-clock rates do not
        "pipeline_vs_encoder_cpu": encoder_cpu_us / e2e["worker_cpu_us_per_event"] if e2e else None,
        "bucketed_vs_arrival": budget / encoder["arrival_order"]["texts_per_s"],
        "bucketed_vs_one_at_a_time": budget / encoder["one_at_a_time"]["texts_per_s"],
    }


def _short(stage: str) -> str:
    if stage.startswith("cluster"):
        return "cluster"
    if stage.startswith("faust"):
        return "Faust codec"
    return SHORT_STAGE.get(stage, stage)


def _encoder_row(label: str, run: dict[str, Any]) -> str:
    return (f"| encoder, {label} | {run['texts_per_s']:,.1f} texts/s · {run['tokens_per_s']:,.0f} tokens/s · "
            f"{run['useful_share']:.0%} useful tokens |")


def _cpu_rows(costs: list[dict[str, Any]], stage1: dict[str, Any]) -> list[str]:
    cpu = sum(c["cpu_us"] for c in costs)
    parts = " · ".join(f"{_short(c['stage'])} {c['cpu_us']:,.0f}" for c in costs)
    return [
        f"| CPU per event outside the encoder | {cpu:,.0f} µs: {parts} |",
        f"| stage 1 without the model, timed whole (check) | {stage1['cpu_us']:,.0f} µs CPU per event |",
    ]


def _e2e_rows(e2e: dict[str, Any], r: dict[str, float | None]) -> list[str]:
    lat, naive, same = e2e["latency_ms"], e2e["naive"], e2e["same_rate_latency_ms"]
    nlat = naive["latency_ms"]
    mb = 1 << 20
    return [
        f"| pipeline end to end (broker + worker) | {e2e['events_per_s']:,.1f} events/s "
        f"({r['pipeline_vs_encoder']:.2f}× raw encoder by wall clock, {r['pipeline_vs_encoder_cpu']:.2f}× by CPU time) |",
        f"| latency at {e2e['offered_rate']:,.1f} events/s, p50 / p95 / p99 | "
        f"{lat['p50']:,.0f} / {lat['p95']:,.0f} / {lat['p99']:,.0f} ms |",
        f"| naive one-at-a-time loop (confluent-kafka, same model) | {naive['events_per_s']:,.1f} events/s; "
        f"at {naive['offered_rate']:,.1f} events/s p50 / p95 / p99 {nlat['p50']:,.0f} / {nlat['p95']:,.0f} / "
        f"{nlat['p99']:,.0f} ms |",
        f"| pipeline / naive loop: throughput · p50 · p99 latency (each at half its own saturation) | "
        f"{r['pipeline_vs_naive']:.2f}× · {r['p50_vs_naive']:.2f}× · {r['p99_vs_naive']:.2f}× |",
        f"| pipeline at the naive loop's rate ({naive['offered_rate']:,.1f} events/s), p50 / p95 / p99 · "
        f"p50 · p99 vs the naive loop | {same['p50']:,.0f} / {same['p95']:,.0f} / {same['p99']:,.0f} ms · "
        f"{r['p50_vs_naive_same_rate']:.2f}× · {r['p99_vs_naive_same_rate']:.2f}× |",
        f"| worker memory (RSS) at rest / peak under load | {e2e['rss_rest_bytes'] / mb:,.0f} / "
        f"{e2e['rss_peak_bytes'] / mb:,.0f} MiB |",
        f"| state on disk per user / profile message | {e2e['state_disk_bytes_per_user'] / 1024:,.1f} KiB "
        f"({e2e['users']} users) / {e2e['profile_message_bytes_mean'] / 1024:,.1f} KiB |",
    ]


def markdown(result: dict[str, Any]) -> str:
    m, model, enc, e2e, r = result["machine"], result["model"], result["encoder"], result["e2e"], result["ratios"]
    cfg = result["config"]
    header = (f"**{m['model']}** ({model['note']}) on {m['device']} {m['dtype']}, "
              f"{m['gpu'] or m['cpu']} × {m['cores_usable']} cores, torch {m['torch']}; "
              f"{cfg['texts']} real reviews, max {cfg['max_tokens']} tokens")
    rows = [
        "| measure | result |",
        "|---|---|",
        _encoder_row(f"token budget {cfg['batch_tokens']:,} (pipeline policy)", enc["token_budget"]),
        _encoder_row(f"arrival order, {cfg['arrival_batch']} per batch", enc["arrival_order"]),
        _encoder_row("one text at a time", enc["one_at_a_time"]),
        *_cpu_rows(result["cpu_us_per_event"], result["stage1_without_model_us_per_event"]),
        *(_e2e_rows(e2e, r) if e2e else []),
        f"| length bucketing vs arrival order / vs one at a time | {r['bucketed_vs_arrival']:.2f}× / "
        f"{r['bucketed_vs_one_at_a_time']:.2f}× |",
    ]
    stages = _stage_rows(e2e) if e2e else []
    return "\n".join([header, "", *rows, "", bottleneck(result), *stages])


def _stage_rows(e2e: dict[str, Any]) -> list[str]:
    """The worker's per-stage histograms: where an event's time goes, at half load, at the naive loop's rate
    and at saturation."""
    sat = {row["stage"]: row for row in e2e["stages_saturation"]}
    same = {row["stage"]: row for row in e2e["stages_same_rate"]}

    def ms(row: dict[str, Any], q: int) -> str:
        value = row[f"p{q}_ms"]
        return "–" if value is None else f"{value:,.1f}"

    rows = [f"| {row['stage']} | {row['count']:,} | {ms(row, 50)} / {ms(row, 95)} / {ms(row, 99)} | "
            f"{ms(same[row['stage']], 50)} / {ms(same[row['stage']], 99)} | "
            f"{ms(sat[row['stage']], 50)} / {ms(sat[row['stage']], 99)} |" for row in e2e["stages_latency"]]
    return ["", f"Per stage (worker histograms, ms; bucket-interpolated), at {e2e['offered_rate']:,.1f} events/s, "
            f"at the naive loop's {e2e['naive']['offered_rate']:,.1f} events/s and at saturation:", "",
            "| stage | events | p50 / p95 / p99 at half load | p50 / p99 at the naive loop's rate | p50 / p99 at saturation |",
            "|---|---|---|---|---|", *rows]


def bottleneck(result: dict[str, Any]) -> str:
    """Where an event's CPU goes: the encoder at the pipeline's policy vs the per-event Python work around it.

    CPU time, not wall time, so that other load on the machine does not move the split.
    """
    budget = result["encoder"]["token_budget"]
    encoder_us = 1e6 * budget["cpu_seconds"] / budget["texts"]
    around_us = sum(c["cpu_us"] for c in result["cpu_us_per_event"])
    line = (f"CPU per event: encoder {encoder_us:,.0f} µs vs {around_us:,.0f} µs around it "
            f"({around_us / (encoder_us + around_us):.1%} of the in-process work).")
    e2e = result["e2e"]
    if e2e:
        line += (f" End to end the worker spends {e2e['worker_cpu_us_per_event']:,.0f} µs CPU per event and the "
                 f"broker {e2e['broker_cpu_us_per_event']:,.0f} µs, on {result['machine']['cores_usable']} cores.")
    return line
