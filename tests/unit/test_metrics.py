"""The worker's metrics: Prometheus names and labels, isolation, the dashboard summary, quantiles."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from stream.worker.metrics import STAGES, Metrics, bucket_quantile

# What the README documents; a rename breaks dashboards and alert rules, so it must be deliberate.
DOCUMENTED = {
    "stream_events": ("counter", {"topic", "outcome"}),
    "stream_dead_letters": ("counter", {"reason"}),
    "stream_batch_size": ("histogram", set()),
    "stream_encoder_texts": ("counter", set()),
    "stream_encoder_tokens": ("counter", {"kind"}),
    "stream_encoder_call_tokens": ("histogram", set()),
    "stream_encoder_padding_ratio": ("histogram", set()),
    "stream_stage_seconds": ("histogram", {"stage"}),
    "stream_consumer_lag": ("gauge", {"topic", "partition"}),
    "stream_watermark_timestamp_seconds": ("gauge", set()),
    "stream_watermark_lag_seconds": ("gauge", set()),
    "stream_churn_alerts": ("counter", {"type"}),
    "stream_profiles": ("gauge", set()),
    "stream_model_info": ("gauge", {"encoder", "clustering"}),  # an info metric: value 1, the facts in labels
    "stream_clustering_updates": ("gauge", set()),
}


def families(m: Metrics) -> dict[str, object]:
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def busy_metrics() -> Metrics:
    m = Metrics()
    m.record_input("reviews", accepted=5, dead_lettered=2)
    m.record_dead_letter("schema violation")
    m.record_dead_letter("not valid JSON")
    m.record_published("profiles", 4)
    m.record_alert("churn_risk")
    m.record_batch(7)
    m.record_encode(texts=3, tokens=30, padded_tokens=40)
    m.record_stage("encode", 0.02, events=3)
    m.set_consumer_lag({"reviews/0": 5, "orders/2": 0})
    m.set_watermark(1_700_000_000_000, now_ms=1_700_000_060_000)
    m.set_profiles(11)
    m.set_model("tiny@abc/mean", "kmeans-k4-ab12#3", 3)
    return m


def test_exposition_parses_and_has_every_documented_metric_with_its_labels() -> None:
    fams = families(busy_metrics())
    for name, (kind, labels) in DOCUMENTED.items():
        assert name in fams, name
        fam = fams[name]
        assert fam.type == kind, name
        for sample in fam.samples:
            if sample.name.endswith("_created"):
                continue
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    assert {s.labels["stage"] for s in fams["stream_stage_seconds"].samples} == set(STAGES)
    assert all(n == n.lower() and n.startswith("stream_") for n in fams)


def test_counters_follow_the_records() -> None:
    fams = families(busy_metrics())
    events = {(s.labels["topic"], s.labels["outcome"]): s.value
              for s in fams["stream_events"].samples if s.name == "stream_events_total"}
    assert events == {("reviews", "accepted"): 5, ("reviews", "dead_letter"): 2, ("profiles", "published"): 4}
    lag = {(s.labels["topic"], s.labels["partition"]): s.value for s in fams["stream_consumer_lag"].samples}
    assert lag == {("reviews", "0"): 5, ("orders", "2"): 0}
    watermark = fams["stream_watermark_lag_seconds"].samples[0].value
    assert watermark == 60.0
    info = fams["stream_model_info"].samples[0]
    assert info.labels == {"encoder": "tiny@abc/mean", "clustering": "kmeans-k4-ab12#3"}


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # a second app in the same process must not clash ("Duplicated timeseries")
    a.record_input("reviews", accepted=3)
    assert busy_metrics().summary()["events_in"] == 7
    assert b.summary()["events_in"] == 0
    assert a.summary()["events_in"] == 3
    assert REGISTRY.get_sample_value("stream_events_total", {"topic": "reviews", "outcome": "accepted"}) is None


def test_lag_of_partitions_no_longer_owned_disappears() -> None:
    m = Metrics()
    m.set_consumer_lag({"reviews/0": 5, "reviews/1": 7})
    m.set_consumer_lag({"reviews/1": 2})  # after a rebalance took partition 0 away
    assert m.summary()["consumer_lag"] == {"total": 2, "partitions": [{"topic": "reviews", "partition": 1, "lag": 2}]}


def test_summary_for_the_dashboard() -> None:
    s = busy_metrics().summary()
    assert (s["events_in"], s["events_out"], s["dead_letters"]) == (7, 4, 2)
    assert s["dead_letter_reasons"] == {"schema violation": 1, "not valid JSON": 1}
    assert s["alerts"] == {"churn_risk": 1, "recovered": 0}
    assert s["profiles"] == 11
    assert s["watermark_lag_seconds"] == 60.0
    assert s["padding_share"] == pytest.approx(0.25)
    assert s["model"] == {"encoder": "tiny@abc/mean", "clustering": "kmeans-k4-ab12#3", "updates": 3}
    stages = {row["stage"]: row for row in s["stages"]}
    assert list(stages) == list(STAGES)
    assert stages["encode"]["count"] == 3  # a batch's duration counts once for each event in it
    assert 10 <= stages["encode"]["p50_ms"] <= 25  # inside the bucket that holds 20 ms
    assert stages["queue_wait"] == {"stage": "queue_wait", "count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}


def test_no_watermark_yet_means_no_watermark_lag() -> None:
    m = Metrics()
    m.set_watermark(0)
    assert m.summary()["watermark_lag_seconds"] is None


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        Metrics().record_stage("encoding", 0.1)


def test_per_event_durations_and_negative_clock_skew() -> None:
    m = Metrics()
    m.record_stage("queue_wait", [0.5, -0.01, 2.0])  # a producer clock ahead of ours must not give negative time
    fams = families(m)
    total = {s.labels["stage"]: s.value for s in fams["stream_stage_seconds"].samples if s.name.endswith("_sum")}
    count = {s.labels["stage"]: s.value for s in fams["stream_stage_seconds"].samples if s.name.endswith("_count")}
    assert (count["queue_wait"], total["queue_wait"]) == (3, 2.5)


def test_encoder_without_texts_records_nothing() -> None:
    m = Metrics()
    m.record_encode(0, 0, 0)
    assert m.summary()["encoder_texts"] == 0 and m.summary()["padding_share"] is None


@given(
    counts=st.lists(st.integers(0, 50), min_size=1, max_size=8),
    q=st.floats(0.01, 1.0),
)
def test_bucket_quantile_stays_inside_the_bucket_that_holds_the_rank(counts: list[int], q: float) -> None:
    bounds = [2.0 ** i for i in range(len(counts))] + [math.inf]
    cumulative, total = [], 0
    for c in [*counts, 0]:
        total += c
        cumulative.append(total)
    buckets = list(zip(bounds, cumulative, strict=True))
    value = bucket_quantile(q, buckets)
    if total == 0:
        assert value is None
        return
    rank = q * total
    i = next(i for i, c in enumerate(cumulative) if c >= rank)
    lower = 0.0 if i == 0 else bounds[i - 1]
    assert lower <= value <= bounds[i]
    assert bucket_quantile(min(q + 0.1, 1.0), buckets) >= value  # monotone in q
