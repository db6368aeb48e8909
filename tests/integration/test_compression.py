"""Input compressed the way other producers send it: every codec Kafka has (gzip, snappy, lz4, zstd).

A producer outside this project picks its own ``compression.type`` (lz4 and zstd are common in
production); the worker's consumer must decompress each one, not stop on the first batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Producer

from stream.devtools.worker_process import WorkerProcess
from stream.kafka.topics import ensure_topics

from .worker_process import wait_for_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CODECS = ("gzip", "snappy", "lz4", "zstd")
T0 = 1_767_225_600_000


def test_orders_from_producers_with_every_compression_codec_all_count(broker, settings_factory, tmp_path: Path) -> None:
    settings = settings_factory(broker.bootstrap)
    ensure_topics(settings)
    expected = {}
    with WorkerProcess(settings, tmp_path) as worker:
        for codec in CODECS:
            producer = Producer({"bootstrap.servers": settings.broker, "compression.type": codec, "linger.ms": 20})
            for i in range(20):
                user = f"{codec}-{i % 5}"
                producer.produce(settings.topic_orders, key=user.encode(), value=json.dumps({
                    "event_id": f"{codec}-{i}", "user_id": user, "ts": T0 + i, "order_id": f"o-{codec}-{i}",
                    "amount": "1.00", "currency": "CNY", "items": 1}).encode())
                expected[user] = {"order": expected.get(user, {}).get("order", 0) + 1}
            assert producer.flush(30) == 0
        wait_for_counts(settings, expected, worker, timeout=120)
