"""The bulk table preload writes exactly what Faust's own changelog recovery would, where Faust looks for it.

A Faust table's changelog is filled on the real broker (overwrites and tombstones included),
then :func:`preload_tables` runs against a fresh data directory: every partition's RocksDB
store must hold the last value per key, no deleted key, and Faust's offset key at the last
offset read; Faust's own store object must read the values back. A second run reads nothing,
and records written later are read from the persisted offset on, not from the start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faust
from faust.types import TP
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from stream.config import Settings
from stream.kafka.clients import make_producer
from stream.worker.preload import preload_tables

pytestmark = pytest.mark.integration

PARTITIONS = 3


def make_table(settings: Settings, datadir: Path) -> Any:
    app = faust.App(settings.app_id, broker=f"kafka://{settings.broker}", store="rocksdb://", datadir=str(datadir))
    return app.Table("state", default=None, partitions=PARTITIONS,
                     schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"))


def write(settings: Settings, topic: str, records: list[tuple[int, bytes, bytes | None]]) -> None:
    producer = make_producer(settings)
    for partition, key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def stored(table: Any) -> tuple[dict[bytes, bytes], dict[int, int]]:
    """(key -> value over all partitions, partition -> persisted offset), read with Faust's own options."""
    store = table.data
    values, offsets = {}, {}
    for partition in range(PARTITIONS):
        db = store.rocksdb_options.open(store.partition_path(partition))
        try:
            for k, v in db.items():
                if k == store.offset_key:
                    offsets[partition] = int(v)
                else:
                    values[k] = v
        finally:
            db.close()
    return values, offsets


def faust_sees(table: Any, ends: dict[int, int], key: bytes, value: bytes) -> None:
    """Faust's own store reads the offsets its recovery starts after (nothing left to replay) and the value."""
    store = table.data
    try:
        assert {p: store.persisted_offset(TP(table.changelog_topic_name, p)) for p in range(PARTITIONS)} == ends
        assert store._get(key) == value
    finally:
        for db in store._dbs.values():
            db.close()
        store._dbs.clear()


def table_with_changelog(settings: Any, tmp_path: Path) -> tuple[Any, str]:
    """A table in ``tmp_path`` and its compacted changelog topic, created empty."""
    table = make_table(settings, tmp_path / "faust")
    topic = table.changelog_topic_name
    admin = AdminClient({"bootstrap.servers": settings.broker})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={"cleanup.policy": "compact"})])[topic].result(30)
    return table, topic


def test_preload_matches_the_changelog_and_resumes_from_the_persisted_offset(broker: Any, settings_factory: Any,
                                                                              tmp_path: Path) -> None:
    settings = settings_factory(broker.bootstrap)
    table, topic = table_with_changelog(settings, tmp_path)

    expected: dict[bytes, bytes] = {}
    records: list[tuple[int, bytes, bytes | None]] = []
    for i in range(3000):
        key = f"u{i % 700}".encode()
        value = None if i % 97 == 0 else json.dumps({"user": key.decode(), "n": i}).encode()
        records.append((hash(key) % PARTITIONS, key, value))
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    write(settings, topic, records)
    ends = {p: max(i for i, r in enumerate(x for x in records if x[0] == p)) for p in range(PARTITIONS)}

    loaded = preload_tables(settings, [table])
    assert loaded.records == len(records) and loaded.partitions == PARTITIONS
    values, offsets = stored(table)
    assert values == expected
    assert offsets == ends
    some = next(iter(expected))
    faust_sees(table, ends, some, expected[some])

    assert preload_tables(settings, [table]).records == 0

    home = next(p for p, k, _ in records if k == some)
    later = [(home, b"late-user", b'{"n": -1}'), (home, some, None)]
    write(settings, topic, later)
    assert preload_tables(settings, [table]).records == len(later)
    values, offsets = stored(table)
    assert values.get(b"late-user") == b'{"n": -1}' and some not in values
    assert offsets == {**ends, home: ends[home] + len(later)}


def test_a_changelog_that_does_not_exist_yet_is_skipped(broker: Any, settings_factory: Any, tmp_path: Path) -> None:
    settings = settings_factory(broker.bootstrap)
    assert preload_tables(settings, [make_table(settings, tmp_path / "faust")]).records == 0


def test_a_partition_another_worker_holds_open_is_left_to_faust(broker: Any, settings_factory: Any,
                                                               tmp_path: Path) -> None:
    settings = settings_factory(broker.bootstrap)
    table, topic = table_with_changelog(settings, tmp_path)
    write(settings, topic, [(p, f"k{p}".encode(), b"{}") for p in range(PARTITIONS)])
    held = table.data.rocksdb_options.open(table.data.partition_path(0))  # RocksDB's lock, as a running worker's
    try:
        loaded = preload_tables(settings, [table])
    finally:
        held.close()
    assert (loaded.records, loaded.partitions) == (PARTITIONS - 1, PARTITIONS - 1)
    assert set(stored(table)[0]) == {f"k{p}".encode() for p in range(1, PARTITIONS)}
