"""All configuration, read once from ``STREAM_*`` environment variables.

Modules receive a :class:`Settings` (or plain values from it) and never read the
environment themselves, so tests can build settings explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.core.events import Limits


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "stream-profiles"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "stream-profiles"


class Settings(BaseSettings):
    """Every knob of the service; defaults work on a laptop."""

    model_config = SettingsConfigDict(env_prefix="STREAM_", frozen=True, extra="ignore")

    # Kafka
    broker: str = Field("127.0.0.1:9092", description="bootstrap servers, host:port[,host:port]")
    app_id: str = Field("stream-profiles", description="Faust app id = consumer group")
    partitions: int = Field(4, ge=1, description="partitions of every topic the project creates")
    replication: int = Field(1, ge=1, description="replication factor of the topics the project creates")
    topic_reviews: str = "reviews"
    topic_searches: str = "searches"
    topic_orders: str = "orders"
    topic_attributes: str = "user-attributes"
    topic_forget: str = "forget-requests"
    topic_profiles: str = "profiles"
    topic_alerts: str = "churn-alerts"
    topic_updates: str = Field("profile-updates", description="internal: per-user updates, co-partitioned with the table")
    topic_dead_letters: str = "dead-letters"
    commit_interval: float = Field(1.0, gt=0, description="seconds between offset commits")
    fetch_max_wait: float = Field(
        0.1, ge=0, description="seconds the worker's consumer long-polls the broker (Faust hard-codes 1.5)"
    )
    session_timeout: float = Field(30.0, gt=0, description="seconds before a silent worker's partitions move to another")
    producer_linger_ms: float = Field(
        1.0, ge=0, description="ms the worker's producer waits to fill a batch (Faust's default 0); each hop pays it"
    )
    producer_batch_bytes: int = Field(262_144, ge=1, description="most bytes per produce batch and partition (Faust's 16 KiB)")

    # Local broker (stream broker start)
    broker_port: int = Field(9092, description="client port of the local broker")
    broker_controller_port: int = Field(0, description="controller port; 0 = client port + 1")
    broker_heap: str = "1g"

    # Storage
    data_dir: Path = Field(default_factory=_default_data_dir, description="RocksDB tables, clustering checkpoint, broker logs")
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="Kafka jars, demo model")
    preload_tables: bool = Field(True, description="read table changelogs into RocksDB in bulk before Faust starts (fast cold restore)")
    standby_replicas: int = Field(1, ge=0, description="Faust standby copies of each table partition on other workers (needs 2+ workers)")

    # Encoder
    model: str = Field("", description="local model directory or a model name in the local HF cache")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    pooling: Literal["mean", "cls"] = "mean"
    max_tokens: int = Field(256, ge=8, description="truncation length per text")
    batch_tokens: int = Field(4096, ge=64, description="token budget per encoder batch (padding included)")
    batch_padding: float = Field(
        0.2, ge=0, le=1, description="most padding per encoder batch, as a share of its tokens; 1 = no cap"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto = bfloat16 on CUDA (float16 where bf16 is unsupported), float32 on CPU")
    torch_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = torch's default")
    review_prefix: str | None = Field(None, description='prepended to reviews; unset: from the model ("passage: " for e5)')
    query_prefix: str | None = Field(None, description='prepended to search queries; unset: from the model ("query: " for e5)')

    # Micro-batching
    batch_size: int = Field(
        0, ge=0, description="max events per micro-batch (a batch takes what queued while the last ran); "
        "0 = 32 on a CPU, where a bigger batch adds wait without speed, growing to 256 under a backlog "
        "of at least 256 events; 256 on a GPU")
    max_text_chars: int = Field(2000, ge=1, description="longer texts are cut to this for the encoder; the cut is recorded")
    reject_text_chars: int = Field(100_000, ge=1, description="longer texts are dead-lettered (records near the broker's 1 MB limit)")
    max_future_seconds: float = Field(300.0, ge=0, description="events whose time is further ahead of the wall clock are dead-lettered")

    # Clustering
    clusters: int = Field(40, ge=2, description="interest clusters (40: best top-interest precision of 10-40, stream eval --users)")
    topics: int = Field(10, ge=0, description="coarse topics above the clusters (centroids grouped); 0 or >= clusters = none")
    warmup: int = Field(0, ge=0, description="embeddings buffered before the first fit; 0 = 50 x clusters")
    warmup_max_wait: float = Field(30.0, gt=0, description="fit with what is buffered (at least `clusters`) after this many seconds")
    half_life_events: float = Field(0.0, ge=0, description="decay of cluster counts in events (0 = no forgetting)")
    reassignment_ratio: float = Field(0.01, ge=0)
    model_publish_interval: float = Field(
        0.5, gt=0, description="the model owner merges what arrived within this many seconds, then publishes one version"
    )
    model_state_interval: float = Field(
        10.0, gt=0, description="the model owner writes its whole state (keyword counts, snippet candidates) this often;"
        " a successor re-reads the learning records since"
    )
    seed: int = 0

    # Profiles (all in event time)
    interest_half_life_days: float = Field(30.0, gt=0, description="half-life of interest, category and sentiment averages")
    windows_days: tuple[int, ...] = Field((30, 90), description='consumption/behaviour windows, JSON list, e.g. "[30,90]"')
    currency: str = Field("CNY", description="orders in another currency are dead-lettered")
    lateness_seconds: float = Field(3600.0, ge=0, description="watermark = oldest partition's newest event time minus this")
    idle_partition_seconds: float = Field(30.0, gt=0, description="a partition without records this long stops holding the watermark back")
    churn_check_hours: float = Field(24.0, gt=0, description="event time between churn re-assessments of all users")
    inactivity_days: float = Field(14.0, gt=0, description="silence at which the inactivity signal is at its maximum")
    churn_alert_at: float = Field(0.6, gt=0, le=1, description="risk at which a churn alert is raised")
    churn_recover_at: float = Field(0.4, ge=0, lt=1, description="risk at or below which an alerted user has recovered")
    vector_encoding: Literal["float16-base64", "json"] = Field(
        "float16-base64", description="public interest vector: base64 of little-endian float16 (compact) or a JSON list"
    )

    # Privacy
    pseudonym_key: str = Field("", description="HMAC-SHA256 key: when set, user ids are replaced by pseudonyms at ingestion")

    # Web (profile lookup)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    api_token: str = Field("", description="when set, the HTTP API requires `Authorization: Bearer <token>`")
    raw_lookups_per_second: float = Field(
        2.0, gt=0, description="raw-id lookups (/users/{raw_id}/profile) per client per second; bursts of 10"
    )

    # Kafka security, passed to Faust (aiokafka) and confluent-kafka clients alike
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = Field("", description="CA bundle to verify the brokers")
    ssl_certfile: str = Field("", description="client certificate (mutual TLS)")
    ssl_keyfile: str = ""

    def to_env(self) -> dict[str, str]:
        """These settings as STREAM_* variables, to start another process (a worker) with them."""
        out = {}
        for name, value in self.model_dump(mode="json", exclude_none=True).items():
            out[f"STREAM_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return out

    @model_validator(mode="after")
    def _text_limits_ordered(self) -> Settings:
        if self.reject_text_chars < self.max_text_chars:
            raise ValueError("STREAM_REJECT_TEXT_CHARS must be at least STREAM_MAX_TEXT_CHARS")
        return self

    def micro_batch(self, device: str) -> int:
        """Events per stage-1 micro-batch for an encoder on ``device`` (see ``batch_size``).

        On a CPU, length-bucketed batches encode only ~1.25x faster than one text at a time,
        while every event in a batch waits for all of it: with e5-small on 2 cores 32 cut the
        encode stage's p99 at half load from 652 to 310 ms (``python -m bench``). A GPU needs
        big batches to be busy.
        """
        if self.batch_size:
            return self.batch_size
        return 32 if device.split(":")[0] == "cpu" else 256

    @property
    def backlog_batch(self) -> int:
        """Events per micro-batch while a backlog of at least this many waits: then only throughput
        matters, and on a CPU 256 per batch encodes ~10% more per second than 32 (less padding)."""
        return self.batch_size or 256

    @property
    def decode_limits(self) -> Limits:
        """What the edge accepts beyond the schemas (stream.core.events.decode)."""
        return Limits(max_text_chars=self.max_text_chars, reject_text_chars=self.reject_text_chars,
                      max_future_ms=round(self.max_future_seconds * 1000))

    @property
    def warmup_size(self) -> int:
        return self.warmup or 50 * self.clusters

    @property
    def controller_port(self) -> int:
        return self.broker_controller_port or self.broker_port + 1

    @property
    def topic_model(self) -> str:
        """Compacted, one partition: the versions of the application's one interest model."""
        return f"{self.app_id}-model"

    @property
    def topic_model_state(self) -> str:
        """Compacted, one partition: the model owner's whole state, from which a successor continues."""
        return f"{self.app_id}-model-state"

    @property
    def topic_learning(self) -> str:
        """One partition: what the workers learned, in the order the model owner merges it."""
        return f"{self.app_id}-model-learning"

    @property
    def kind_of_topic(self) -> dict[str, str]:
        """Input topic -> event kind (its contract in schemas/)."""
        return {
            self.topic_reviews: "review",
            self.topic_searches: "search",
            self.topic_orders: "order",
            self.topic_attributes: "user_attributes",
            self.topic_forget: "forget",
        }

    @property
    def topic_of_kind(self) -> dict[str, str]:
        return {kind: topic for topic, kind in self.kind_of_topic.items()}
