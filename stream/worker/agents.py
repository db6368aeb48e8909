"""The Faust shell: topics, two tables, two agents, a timer and the web views. Logic lives in pure modules.

Commit order (at-least-once, made exact by idempotence):

Stage 1 ``encode`` (continuous micro-batches of the input topics, manual acks; see
:mod:`stream.worker.stage1`):
  1. decode/validate, clean, encode, assign and learn in a worker thread;
  2. publish dead letters, per-user updates and event-time ticks once the previous batch's
     are delivered (so the next batch is processed while the broker acknowledges the last
     one, and a failed delivery is never followed by a later one: it stops the worker), and
     the batch's learning, which is awaited, so that redelivered texts are not sent again;
  3. at most once per commit interval: wait until the broker has everything sent so far,
     write the clustering checkpoint atomically (it records, per source partition, the
     last offset learned from), then ack every batch it covers; Faust commits acked
     offsets after flushing its producer.
  A crash before 3 redelivers the batches since the last checkpoint: the restored model
  has not learned them, so they are learned once; the updates re-sent for them are
  skipped by stage 2, and a record the checkpoint had learned is assigned, not relearned.

Stage 2 ``apply`` (``profile-updates``, keyed by user id, co-partitioned with the table):
  apply the update to the user's profile unless its (source partition, offset) was
  applied already, re-assess churn, store it (table changelog), publish the profile and
  any churn alert. A tick re-assesses every user of its partition at the watermark.
  The logic is :class:`stream.core.stage2.ProfileStage`, run by :class:`stream.worker.apply.ApplyStage`
  (which has a forget request's keyword counts delivered to the model owner through
  ``EncodeStage.forget_terms`` before it deletes the profile).
  Faust flushes the producer (changelog + outputs) before committing the offset; a record is acked only
  once applied and published, and a failure stops the worker (``ApplyStage.consume``).
"""

from __future__ import annotations

import time
from typing import Any

import faust

from stream.config import Settings
from stream.core.profile import Rules
from stream.core.stage2 import ProfileStage
from stream.kafka.model_topics import ModelFollower
from stream.worker.dashboard import RecentAlerts, place
from stream.worker.apply import ApplyStage
from stream.worker.json_table import JsonValues
from stream.worker.metrics import Metrics
from stream.worker.owner import OwnerStage
from stream.worker.pipeline import BatchProcessor
from stream.worker.stage1 import EncodeStage
from stream.worker.web import register_views


UPDATES_BUFFER = 256  # internal records Faust may buffer for stage 2: at most 128 MiB of packs


def _now_ms() -> int:
    return int(time.time() * 1000)


def _highwater(app: faust.App, tp: faust.types.TP) -> int | None:
    """End offset of an input partition, None while the client does not know it yet."""
    try:
        return app.consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - aiokafka asserts or raises while a rebalance reassigns the partition
        return None


def rules_from(settings: Settings) -> Rules:
    return Rules(
        half_life_ms=settings.interest_half_life_days * 86_400_000,
        windows_days=tuple(settings.windows_days),
        currency=settings.currency,
        inactivity_days=settings.inactivity_days,
        alert_at=settings.churn_alert_at,
        recover_at=settings.churn_recover_at,
        check_every_ms=int(settings.churn_check_hours * 3_600_000),  # the ticks' schedule (build_processor)
        lateness_ms=int(settings.lateness_seconds * 1000),
        vector_encoding=settings.vector_encoding,
    )


def register(app: faust.App, settings: Settings, processor: BatchProcessor) -> EncodeStage:
    """Declare topics, the profile table, the agents and the web views on ``app``."""
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    sources = app.topic(*settings.kind_of_topic, **raw)
    json_out = {"key_serializer": "raw", "value_serializer": "json"}
    # Packed per partition (stream.core.messages.pack_internal): a record can hold a whole micro-batch, so
    # Faust buffers fewer of them than its default 4,096 (up to 512 KiB each).
    updates = app.topic(settings.topic_updates, maxsize=UPDATES_BUFFER, **raw)
    changelog = {"segment.ms": str(3_600_000), "min.cleanable.dirty.ratio": "0.2"}  # let compaction keep recovery short
    table = app.Table(
        "profile-state",
        default=None,
        partitions=settings.partitions,
        value_type=bytes,  # JsonValues encodes: Faust picks the serializer from this type, not from the schema
        schema=faust.Schema(key_type=str, value_type=bytes, key_serializer="raw", value_serializer="raw"),
        extra_topic_configs=changelog,
    )
    forgotten = app.Table(
        "forgotten",
        default=None,
        partitions=settings.partitions,
        value_type=bytes,  # JsonValues encodes: Faust picks the serializer from this type, not from the schema
        schema=faust.Schema(key_type=str, value_type=bytes, key_serializer="raw", value_serializer="raw"),
        help="per forgotten user only the source offsets already applied, so redelivery cannot resurrect a profile",
        extra_topic_configs=changelog,
    )
    learning = app.topic(settings.topic_learning, partitions=1, **raw)
    follower = ModelFollower(settings)
    follower.start()
    owner = OwnerStage(settings, processor.encoder.version)
    metrics = Metrics()
    recent_alerts = RecentAlerts()
    stage = EncodeStage(
        processor,
        settings.data_dir / "clustering" / f"{settings.app_id}.ckpt",
        updates=updates,
        dead_letters=app.topic(settings.topic_dead_letters, **json_out),
        partitions=settings.partitions,
        # A rebalance waits until every record taken is acked, and nothing more is read meanwhile: the ends
        # count as unknown then, so updates held for event time go out after the idleness delay (Watermark.stuck).
        highwaters=lambda: {
            f"{tp.topic}/{tp.partition}": None if app.rebalancing else _highwater(app, tp)
            for tp in app.consumer.assignment()
            if tp.topic in settings.kind_of_topic
        },
        warmup_max_wait=settings.warmup_max_wait,
        checkpoint_interval=settings.commit_interval,
        metrics=metrics,
        learning=learning,
        follower=follower,
        settings=settings,
        max_batch=settings.micro_batch(processor.encoder.device),
        backlog_batch=settings.backlog_batch,
        crash=app.crash,
    )
    stage.restore()
    stage.recall_dead_letters(settings)
    profiles = ProfileStage(JsonValues(table), JsonValues(forgotten), rules_from(settings), _now_ms)

    async def send(topic: str, user: str, value: bytes | None) -> None:
        """Straight to Faust's producer (flushed before every commit), past the per-message layers of
        ``Topic.send``: two sends per event are most of what stage 2 costs besides the profile itself."""
        await app.producer.send(topic, user.encode(), value, partition=None, timestamp=None, headers=None)

    applying = ApplyStage(profiles, send=send, forget_terms=stage.forget_terms, topic_profiles=settings.topic_profiles,
                          topic_alerts=settings.topic_alerts, metrics=metrics, recent_alerts=recent_alerts,
                          crash=app.crash)

    @app.agent(sources, name="encode")
    async def encode(stream: faust.StreamT) -> None:
        await stage.consume(stream)

    @app.timer(interval=1.0)
    async def let_time_pass() -> None:
        stage.tick()
        await owner.on_timer()

    @app.agent(learning, name="model-owner")
    async def own_the_model(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(1000, within=settings.model_publish_interval):
            await owner.handle(stream, events)

    @app.on_partitions_assigned.connect
    async def on_assigned(_app: faust.App, assigned: set[faust.types.TP], **_: Any) -> None:
        """Partitions moved: stage 1 re-reads which texts others already sent, the owner reloads the model."""
        stage.reassigned = True
        owner.reload = True

    @app.agent(updates, name="apply")
    async def apply(stream: faust.StreamT) -> None:
        await applying.consume(stream)

    def ready() -> bool:
        return app.tables.recovery.completed.is_set() and not app.rebalancing

    def clusters_on_map() -> dict[str, Any]:
        view = stage.processor.view
        return place(stage.clusters(), view.centers if view is not None else None)

    register_views(
        app, table=table, profiles=profiles, api_token=settings.api_token,
        pseudonym_key=settings.pseudonym_key, raw_lookups_per_second=settings.raw_lookups_per_second,
        ready=ready, watermark=lambda: stage.processor.watermark,
        clusters=clusters_on_map, assign=stage.assign_texts,
        metrics=metrics, recent_alerts=recent_alerts, profile_count=lambda: len(table),
        health=lambda: {
            "model_version": stage.processor.model_version, "clusters_fitted": stage.processor.view is not None,
            "held_for_warmup": len(stage.processor.learner.pending), "unacked": len(stage.held),
            "waiting_for_watermark": len(stage.processor.outbox), "watermark": stage.processor.watermark,
            "sent": dict(stage.processor.learner.sent),
            "model_owner": owner.state(),
        },
    )
    return stage
