"""Topic layout: created by the project, equal partition counts, compacted outputs."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stream.config import Settings
from stream.kafka.security import confluent_config

MAX_MODEL_BYTES = 32 * 1024 * 1024  # a model version (compressed JSON) must fit in one record

_WEEK_MS = 7 * 24 * 3600 * 1000


class TopicLayoutError(RuntimeError):
    """An existing topic does not match what the pipeline needs (e.g. partition count)."""


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-topic configs: profiles are keyed upserts (compacted); dead letters are kept long; the model
    topics keep the newest version and the owner's newest state (a few MB at most), and the learning
    topic (a week) what the owner merged since that state."""
    return {
        **{topic: {} for topic in settings.kind_of_topic},
        settings.topic_alerts: {},
        settings.topic_updates: {"retention.ms": str(_WEEK_MS)},
        settings.topic_profiles: {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"},
        settings.topic_dead_letters: {"retention.ms": str(4 * _WEEK_MS)},
        **{topic: {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": str(3_600_000),
                   "max.message.bytes": str(MAX_MODEL_BYTES)} for topic in (settings.topic_model, settings.topic_model_state)},
        settings.topic_learning: {"retention.ms": str(_WEEK_MS), "max.message.bytes": str(8 * 1024 * 1024)},
    }


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Partitions per topic: the model topics have one (one owner, one order), all others the same count."""
    single = {settings.topic_model, settings.topic_model_state, settings.topic_learning}
    return {name: 1 if name in single else settings.partitions for name in topic_configs(settings)}


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics; refuse to run on topics with another partition count.

    Co-partitioning (every source keyed by user id, one table partition per source
    partition) only holds when all topics have the same number of partitions.
    """
    admin = AdminClient(confluent_config(settings))
    existing = admin.list_topics(timeout=timeout).topics
    configs = topic_configs(settings)
    partitions = topic_partitions(settings)
    wrong = {
        name: len(existing[name].partitions)
        for name in configs
        if name in existing and len(existing[name].partitions) != partitions[name]
    }
    if wrong:
        raise TopicLayoutError(
            f"topics {wrong} exist with another partition count than expected {({n: partitions[n] for n in wrong})}"
            f" (STREAM_PARTITIONS={settings.partitions}; the model topics have one)"
        )
    missing = [NewTopic(name, partitions[name], settings.replication, config=cfg) for name, cfg in configs.items() if name not in existing]
    if not missing:
        return []
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != "TOPIC_ALREADY_EXISTS" and "already exists" not in str(exc):
                raise
    return [t.topic for t in missing]
