"""Every metric the worker exports, defined once, on a registry of its own.

A dedicated :class:`~prometheus_client.CollectorRegistry` (not the library's global one)
lets tests and several apps in one process each have their own counts. The worker calls
the small ``record_*``/``set_*`` methods with plain values, serves :meth:`Metrics.render`
on ``GET /metrics`` (Prometheus text format) and :meth:`Metrics.summary` to the dashboard.

Naming follows the Prometheus conventions: a ``stream_`` prefix, base units (seconds),
``_total`` on counters, labels for dimensions with few values (topic, outcome, reason,
stage, alert type, partition), never user ids or texts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# The stages an event passes through, in order (the benchmark's end-to-end path).
STAGES = (
    "fetch",  # record timestamp on an input topic -> the encode agent has it
    "queue_wait",  # the encode agent has it -> its micro-batch starts
    "decode_clean",  # decode, validate, privacy, normalise, jieba
    "encode",  # sentence encoder
    "cluster",  # assign + learn + keyword counts
    "outbox_wait",  # processed -> published: updates held for their tick, texts held for the warm start
    "publish_updates",  # hand updates, ticks, dead letters to the producer (delivery is awaited before the ack)
    "stage2_pickup",  # update published -> picked up by stage 2
    "table_write",  # apply the update, churn step, table write
    "publish_profile",  # send profile (and alert) to the output topics
)

# Outcomes of stream_events_total: input records are accepted or dead-lettered, outputs published.
ACCEPTED, DEAD_LETTER, PUBLISHED = "accepted", "dead_letter", "published"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0,
                    1.5, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)  # fine around the 250 ms / 1 s targets
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, math.inf)
_TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, math.inf)
_RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, math.inf)


class Metrics:
    """The worker's metrics; one instance per app, each with its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "stream_events", "Records per topic: input records accepted or dead-lettered, output records published.",
            ["topic", "outcome"], registry=r,
        )
        self.dead_letters = Counter(
            "stream_dead_letters", "Input records sent to the dead-letter topic, by reason.", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "stream_batch_size", "Input records per stage-1 micro-batch.", buckets=_SIZE_BUCKETS, registry=r
        )
        self.encoder_texts = Counter("stream_encoder_texts", "Texts embedded by the sentence encoder.", registry=r)
        self.encoder_tokens = Counter(
            "stream_encoder_tokens",
            "Tokens through the encoder: useful (the texts' own) and padding (filler up to each batch's longest text).",
            ["kind"], registry=r,
        )
        self.encoder_call_tokens = Histogram(
            "stream_encoder_call_tokens", "Useful tokens per encoder call (one micro-batch's texts).",
            buckets=_TOKEN_BUCKETS, registry=r,
        )
        self.encoder_padding_ratio = Histogram(
            "stream_encoder_padding_ratio", "Share of padding among the tokens the model processed, per encoder call.",
            buckets=_RATIO_BUCKETS, registry=r,
        )
        self.stage_seconds = Histogram(
            "stream_stage_seconds", "Time an event spends in each pipeline stage.", ["stage"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.consumer_lag = Gauge(
            "stream_consumer_lag", "Records not yet consumed per input partition owned by this worker (end offset - position).",
            ["topic", "partition"], registry=r,
        )
        self.watermark = Gauge(
            "stream_watermark_timestamp_seconds", "Event-time watermark (Unix time); constant while it is stuck.",
            registry=r,
        )
        self.watermark_lag = Gauge(
            "stream_watermark_lag_seconds", "Wall-clock time minus the event-time watermark.", registry=r
        )
        self.churn_alerts = Counter(
            "stream_churn_alerts", "Churn alerts published, by type (churn_risk, recovered).", ["type"], registry=r
        )
        self.profiles = Gauge("stream_profiles", "Profiles in this worker's table partitions.", registry=r)
        self.model = Info(
            "stream_model", "Encoder and clustering model in use (the version changes with every clustering update).",
            registry=r,
        )
        self.clustering_updates = Gauge(
            "stream_clustering_updates", "Number of the application's model version this worker assigns with (first fit = 1).", registry=r
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        for kind in ("useful", "padding"):
            self.encoder_tokens.labels(kind)
        for kind in ("churn_risk", "recovered"):
            self.churn_alerts.labels(kind)

    # --- recording -------------------------------------------------------------------------

    def record_input(self, topic: str, accepted: int, dead_lettered: int = 0) -> None:
        self.events.labels(topic, ACCEPTED).inc(accepted)
        if dead_lettered:
            self.events.labels(topic, DEAD_LETTER).inc(dead_lettered)

    def record_dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason).inc()

    def record_published(self, topic: str, n: int = 1) -> None:
        self.events.labels(topic, PUBLISHED).inc(n)

    def record_alert(self, alert_type: str) -> None:
        self.churn_alerts.labels(alert_type).inc()

    def record_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def record_encode(self, texts: int, tokens: int, padded_tokens: int) -> None:
        """One encoder call: ``padded_tokens`` counts what the model processed, padding included."""
        if not texts:
            return
        padding = max(padded_tokens - tokens, 0)
        self.encoder_texts.inc(texts)
        self.encoder_tokens.labels("useful").inc(tokens)
        self.encoder_tokens.labels("padding").inc(padding)
        self.encoder_call_tokens.observe(tokens)
        if padded_tokens:
            self.encoder_padding_ratio.observe(padding / padded_tokens)

    def record_stage(self, stage: str, seconds: float | Iterable[float], events: int = 1) -> None:
        """Time spent in ``stage``: one duration shared by ``events`` events (a batch), or one per event."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        child = self.stage_seconds.labels(stage)
        if isinstance(seconds, (int, float)):
            for _ in range(events):
                child.observe(max(float(seconds), 0.0))
        else:
            for s in seconds:
                child.observe(max(float(s), 0.0))

    def set_consumer_lag(self, lags: Mapping[str, int]) -> None:
        """Lag per "topic/partition" currently owned; partitions no longer owned disappear."""
        self.consumer_lag.clear()
        for source, lag in lags.items():
            topic, _, partition = source.rpartition("/")
            self.consumer_lag.labels(topic, partition).set(max(lag, 0))

    def set_watermark(self, watermark_ms: int, now_ms: int | None = None) -> None:
        if not watermark_ms:
            return
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.watermark.set(watermark_ms / 1000)
        self.watermark_lag.set((now_ms - watermark_ms) / 1000)

    def set_profiles(self, n: int) -> None:
        self.profiles.set(n)

    def set_model(self, encoder: str, clustering: str, updates: int) -> None:
        self.model.info({"encoder": encoder, "clustering": clustering})
        self.clustering_updates.set(updates)

    # --- reading ---------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def summary(self) -> dict[str, Any]:
        """Current totals for the dashboard, which turns successive readings into rates.

        Shape (``GET /dashboard/data``)::

            {"time": unix seconds, "events_in": n, "events_out": n, "dead_letters": n,
             "topics": [{"topic", "outcome", "count"}], "dead_letter_reasons": {reason: n},
             "consumer_lag": {"total": n, "partitions": [{"topic", "partition", "lag"}]},
             "watermark_lag_seconds": s | None, "profiles": n, "alerts": {type: n},
             "encoder_texts": n, "padding_share": r | None,
             "stages": [{"stage", "count", "p50_ms", "p95_ms", "p99_ms"}],
             "model": {"encoder", "clustering", "updates"}}
        """
        samples = {
            m.name: [(s.name, s.labels, s.value) for s in m.samples] for m in self.registry.collect()
        }
        topics = [
            {"topic": lab["topic"], "outcome": lab["outcome"], "count": int(v)}
            for name, lab, v in samples["stream_events"] if name == "stream_events_total"
        ]
        lags = [
            {"topic": lab["topic"], "partition": int(lab["partition"]), "lag": int(v)}
            for _, lab, v in samples["stream_consumer_lag"]
        ]
        tokens = {lab["kind"]: v for name, lab, v in samples["stream_encoder_tokens"] if name.endswith("_total")}
        processed = tokens.get("useful", 0.0) + tokens.get("padding", 0.0)
        info = next((lab for name, lab, _ in samples["stream_model"] if name == "stream_model_info"), {})

        def gauge(name: str) -> float:
            return samples[name][0][2]

        return {
            "time": time.time(),
            "events_in": sum(t["count"] for t in topics if t["outcome"] != PUBLISHED),
            "events_out": sum(t["count"] for t in topics if t["outcome"] == PUBLISHED),
            "dead_letters": int(sum(v for n, _, v in samples["stream_dead_letters"] if n.endswith("_total"))),
            "topics": sorted(topics, key=lambda t: (t["topic"], t["outcome"])),
            "dead_letter_reasons": {
                lab["reason"]: int(v) for n, lab, v in samples["stream_dead_letters"] if n.endswith("_total")
            },
            "consumer_lag": {
                "total": sum(p["lag"] for p in lags),
                "partitions": sorted(lags, key=lambda p: (p["topic"], p["partition"])),
            },
            "watermark_lag_seconds": gauge("stream_watermark_lag_seconds") if gauge("stream_watermark_timestamp_seconds") else None,
            "profiles": int(gauge("stream_profiles")),
            "alerts": {lab["type"]: int(v) for n, lab, v in samples["stream_churn_alerts"] if n.endswith("_total")},
            "encoder_texts": int(next((v for n, _, v in samples["stream_encoder_texts"] if n.endswith("_total")), 0)),
            "padding_share": tokens.get("padding", 0.0) / processed if processed else None,
            "stages": [_stage_row(stage, samples["stream_stage_seconds"]) for stage in STAGES],
            "model": {
                "encoder": info.get("encoder"),
                "clustering": info.get("clustering"),
                "updates": int(gauge("stream_clustering_updates")),
            },
        }


def _stage_row(stage: str, samples: list[tuple[str, dict[str, str], float]]) -> dict[str, Any]:
    buckets = sorted(
        (float(lab["le"]), v) for name, lab, v in samples if name.endswith("_bucket") and lab["stage"] == stage
    )
    count = int(buckets[-1][1]) if buckets else 0

    def ms(q: float) -> float | None:
        value = bucket_quantile(q, buckets)
        return None if value is None else round(value * 1000, 2)

    return {"stage": stage, "count": count, "p50_ms": ms(0.5), "p95_ms": ms(0.95), "p99_ms": ms(0.99)}


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative histogram buckets ``(upper bound, count)``, like PromQL's
    ``histogram_quantile``: linear inside the bucket, the last finite bound for the +Inf bucket.

    >>> bucket_quantile(0.5, [(1.0, 0), (2.0, 10), (float("inf"), 10)])
    1.5
    >>> bucket_quantile(0.5, [(1.0, 0), (float("inf"), 0)]) is None
    True
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(upper):
                return lower
            inside = cumulative - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = upper, cumulative
    return lower
