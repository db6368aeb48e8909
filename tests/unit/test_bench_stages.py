"""The benchmark's per-phase stage table: the difference of two scrapes of a worker's histograms."""

from __future__ import annotations

from bench.stages import Buckets, stage_table
from stream.worker.metrics import Metrics


def buckets(m: Metrics) -> Buckets:
    out: Buckets = {}
    for family in m.registry.collect():
        for s in family.samples:
            if s.name == "stream_stage_seconds_bucket":
                out.setdefault(s.labels["stage"], {})[float(s.labels["le"])] = s.value
    return out


def test_only_what_happened_between_the_scrapes_counts() -> None:
    m = Metrics()
    m.record_stage("encode", 20.0, events=100)  # an earlier phase, far slower
    before = buckets(m)
    m.record_stage("encode", [0.04, 0.06, 0.09, 0.2])
    rows = {r["stage"]: r for r in stage_table(buckets(m), before)}
    assert rows["encode"]["count"] == 4
    assert 50 <= rows["encode"]["p50_ms"] <= 100 and rows["encode"]["p99_ms"] <= 200
    assert rows["fetch"] == {"stage": "fetch", "count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
