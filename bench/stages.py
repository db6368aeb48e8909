"""Per-stage latency of a running worker, for one phase of the benchmark only.

The worker's ``stream_stage_seconds`` histograms are cumulative since it started; the difference
of two scrapes of ``GET /metrics`` is the phase in between, and its quantiles are read from the
buckets the way PromQL's ``histogram_quantile`` does (so they are as coarse as the buckets).
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from stream.config import Settings
from stream.worker.metrics import STAGES, bucket_quantile

Buckets = dict[str, dict[float, float]]  # stage -> upper bound -> cumulative count


def scrape(settings: Settings) -> Buckets:
    """The stage histograms of the worker behind ``settings`` (its web port, its API token)."""
    request = urllib.request.Request(f"http://{settings.web_host}:{settings.web_port}/metrics")
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        text = resp.read().decode()
    out: Buckets = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if family.name != "stream_stage_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                out[sample.labels["stage"]][float(sample.labels["le"])] = sample.value
    return dict(out)


def stage_table(after: Buckets, before: Buckets) -> list[dict[str, Any]]:
    """Count and p50/p95/p99 (ms) per stage, in pipeline order, of what happened between the two scrapes."""
    rows = []
    for stage in STAGES:
        now, then = after.get(stage, {}), before.get(stage, {})
        buckets = sorted((le, n - then.get(le, 0.0)) for le, n in now.items())
        row: dict[str, Any] = {"stage": stage, "count": int(buckets[-1][1]) if buckets else 0}
        for q in (50, 95, 99):
            value = bucket_quantile(q / 100, buckets)
            row[f"p{q}_ms"] = None if value is None else round(1000 * value, 1)
        rows.append(row)
    return rows
