"""Table restore in bulk, before Faust starts: each changelog partition read into its RocksDB store.

Why: Faust replays a changelog one record at a time through its stream machinery (fetch loop,
per-message tasks, conductor, decode with the table's serializers, recovery queue), about
3,000-6,000 records/s on two cores, so a worker whose local store is gone (a new container, a
lost disk) needs minutes for a large table. Here confluent-kafka reads each changelog partition
from the offset the local store has persisted to the current end, and the raw key/value bytes
go into RocksDB in write batches, each batch together with the offset it reaches (atomically:
a crash mid-way leaves a consistent store that the next start continues).

The layout is Faust's own, taken from the table's store object (database path per partition,
RocksDB options, offset key), and Faust writes changelog bytes unchanged too
(``Store.apply_changelog_batch``). Faust then starts its recovery at the persisted offset and
replays only what was written since. Every partition of every table is loaded, because the
assignment is not known before the worker joins the group: with several workers each reads the
whole changelog once at start (a partition assigned later then needs only its tail).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from stream.config import Settings
from stream.kafka.security import confluent_config

BATCH_RECORDS = 5_000  # records per RocksDB write batch (and offset checkpoint)


@dataclass
class Loaded:
    """What one start preloaded."""

    records: int = 0
    partitions: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        return (f"table preload: {self.records} changelog records into {self.partitions} partitions "
                f"in {self.seconds:.2f} s ({rate:,.0f} records/s)")


def preload_tables(settings: Settings, tables: Iterable[Any], timeout: float = 600.0) -> Loaded:
    """Bring the local RocksDB store of every partition of ``tables`` (Faust tables) up to its changelog's end.

    Tables whose store is not RocksDB, and changelog topics that do not exist yet, are skipped.
    A read that runs past ``timeout`` stops where it is: Faust recovers the rest as usual.
    """
    started = time.monotonic()
    loaded = Loaded()
    consumer = Consumer({
        **confluent_config(settings),
        "group.id": f"stream-preload-{time.monotonic_ns()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "queued.max.messages.kbytes": 64 * 1024,  # bounds the prefetched records held in memory
    })
    try:
        for table in tables:
            if hasattr(table.data, "rocksdb_options"):
                _load_table(consumer, table.data, table.changelog_topic_name, started + timeout, loaded)
    finally:
        consumer.close()
    loaded.seconds = time.monotonic() - started
    if loaded.records:
        _say(loaded.line())
    return loaded


def _load_table(consumer: Consumer, store: Any, topic: str, deadline: float, loaded: Loaded) -> None:
    """Every partition of ``topic`` behind its end, read at once into ``store``'s per-partition databases."""
    import rocksdict

    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return
    dbs: dict[int, Any] = {}
    try:
        starts, ends = {}, {}
        for partition in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            try:
                db = dbs[partition] = store.rocksdb_options.open(store.partition_path(partition))
            except Exception as exc:  # rocksdict raises a plain exception; a lock means a running worker owns it
                if "lock" not in str(exc).lower():
                    raise
                continue  # another worker process sharing this data directory has it open: Faust will wait for it
            persisted = db.get(store.offset_key)
            start = max(low, -1 if persisted is None else int(persisted) + 1)
            if start < high:
                starts[partition], ends[partition] = start, high
        if not starts:
            return
        consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        batches = {p: rocksdict.WriteBatch(raw_mode=True) for p in starts}
        pending = dict.fromkeys(starts, 0)
        last: dict[int, int] = {}
        todo = set(starts)
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.2):
                partition, error = msg.partition(), msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"preloading {topic}/{partition}: {error}")
                    todo.discard(partition)
                    continue
                batch = batches[partition]
                if msg.value() is None:
                    batch.delete(msg.key())
                else:
                    batch.put(msg.key(), msg.value())
                last[partition] = msg.offset()
                pending[partition] += 1
                loaded.records += 1
                if pending[partition] >= BATCH_RECORDS:
                    _write(dbs[partition], batch, store.offset_key, last[partition])
                    batches[partition], pending[partition] = rocksdict.WriteBatch(raw_mode=True), 0
                if last[partition] >= ends[partition] - 1:
                    todo.discard(partition)
        for partition, n in pending.items():
            if n:
                _write(dbs[partition], batches[partition], store.offset_key, last[partition])
        loaded.partitions += len(last)
        consumer.unassign()
    finally:
        for db in dbs.values():
            db.close()


def _write(db: Any, batch: Any, offset_key: bytes, offset: int) -> None:
    """One batch and the offset it reaches, atomically (Faust's offset key: the last offset applied)."""
    batch.put(offset_key, str(offset).encode())
    db.write(batch)


def _say(message: str) -> None:
    """One log line in Faust's format: logging is configured only once Faust's worker starts."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:23]
    print(f"[{stamp}] [INFO] [stream.preload] {message}", file=sys.stderr, flush=True)
