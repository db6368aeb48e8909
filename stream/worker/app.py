"""Composition root: builds the Faust app and its collaborators from one Settings."""

from __future__ import annotations

from dataclasses import asdict

import faust

from stream.config import Settings
from stream.kafka.security import faust_credentials
from stream.model_meta import model_prefixes
from stream.worker.agents import register
from stream.worker.encoder import Encoder, load_encoder
from stream.worker.faust_consumer import configure_worker_consumer
from stream.worker.faust_recovery import keep_records_across_rebalances
from stream.worker.pipeline import BatchProcessor
from stream.worker.preload import preload_tables


def build_processor(settings: Settings, encoder: Encoder) -> BatchProcessor:
    """Stage 1 of a worker: the interest model is the application's (shared through the model topics)."""
    return BatchProcessor(
        encoder,
        None,
        kind_of_topic=settings.kind_of_topic,
        prefixes=asdict(model_prefixes(settings.model, settings.review_prefix, settings.query_prefix)),
        limits=settings.decode_limits,
        currency=settings.currency,
        lateness_ms=int(settings.lateness_seconds * 1000),
        tick_every_ms=int(settings.churn_check_hours * 3_600_000),
        idle_after=settings.idle_partition_seconds,
        pseudonym_key=settings.pseudonym_key.encode() or None,
        topics=settings.topics,
    )


def create_app(settings: Settings, encoder: Encoder | None = None) -> faust.App:
    """A ready Faust app; the encoder is loaded here unless one is given (tests, benchmarks)."""
    datadir = settings.data_dir / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{b}" for b in settings.broker.split(",")],
        broker_credentials=faust_credentials(settings),
        store="rocksdb://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=settings.standby_replicas,
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_batch_size=settings.producer_batch_bytes,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
    )
    configure_worker_consumer(app, settings.fetch_max_wait)
    keep_records_across_rebalances(app)
    register(app, settings, build_processor(settings, encoder or load_encoder(settings)))
    if settings.preload_tables:
        preload_tables(settings, app.tables.values())
    return app
