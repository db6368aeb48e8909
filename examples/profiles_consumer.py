"""A downstream consumer of the compacted ``profiles`` topic (e.g. a CRM sync).

Each record is a user's whole current profile, keyed by user id; a tombstone (null value)
means the user was forgotten, so delete your copy. Every profile is validated against the
JSON Schema the installed ``stream-profiles`` package ships (``stream/schemas``), and a
record that does not match is reported and skipped, never fatal. Offsets are committed
only for records handled (at-least-once: make your writes idempotent, e.g. upsert by key).

    python examples/profiles_consumer.py --broker 127.0.0.1:9092 --group crm-sync
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
import time
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

import fastjsonschema
from confluent_kafka import Consumer


def validator(schema_file: str) -> Callable[[Any], Any]:
    """A compiled validator for one of the package's schemas (raises JsonSchemaException on a mismatch)."""
    return fastjsonschema.compile(json.loads(files("stream").joinpath("schemas", schema_file).read_text("utf-8")))


def records(consumer: Consumer, idle_timeout: float | None) -> Iterator[Any]:
    """Messages until none has arrived for ``idle_timeout`` seconds (None: forever)."""
    last = time.monotonic()
    while idle_timeout is None or time.monotonic() - last < idle_timeout:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            print(f"consumer error: {msg.error()}", file=sys.stderr)
            continue
        last = time.monotonic()
        yield msg


def interest_vector(profile: dict[str, Any]) -> list[float]:
    """The unit interest vector as floats, in either encoding (STREAM_VECTOR_ENCODING); [] before the first text."""
    interests = profile["interests"]
    if interests["interest_vector_encoding"] == "float16-base64":
        raw = base64.b64decode(interests["interest_vector"])
        return list(struct.unpack(f"<{len(raw) // 2}e", raw))  # little-endian IEEE half floats
    return list(interests["interest_vector"])


def describe(profile: dict[str, Any]) -> str:
    c, churn = profile["consumption"], profile["churn"]
    top = profile["interests"]["top_clusters"]
    interest = " ".join(top[0]["keywords"][:3]) if top else "-"
    return (f"{profile['user_id']} segment={c['rfm']['segment']} spend={c['monetary_total']} {c['currency']} "
            f"interest={interest} vector={len(interest_vector(profile))}d churn={churn['score']} ({churn['level']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="profiles")
    ap.add_argument("--group", default="profiles-example")
    ap.add_argument("--idle-timeout", type=float, default=None, help="stop after this many seconds without records")
    args = ap.parse_args(argv)

    validate = validator("profile.schema.json")
    consumer = Consumer({
        "bootstrap.servers": args.broker,  # add security.protocol, sasl.* or ssl.* here for a secured cluster
        "group.id": args.group,
        "auto.offset.reset": "earliest",  # a new group reads the whole compacted topic: one record per user
        "enable.auto.offset.store": False,  # commit only what was handled
    })
    consumer.subscribe([args.topic])
    try:
        for msg in records(consumer, args.idle_timeout):
            user = (msg.key() or b"").decode()
            if msg.value() is None:
                print(f"FORGOTTEN {user}: delete every copy of this user's data", flush=True)
            else:
                try:
                    profile = validate(json.loads(msg.value()))
                except (ValueError, fastjsonschema.JsonSchemaException) as exc:
                    print(f"INVALID {msg.topic()}/{msg.partition()}/{msg.offset()}: {exc}", file=sys.stderr, flush=True)
                else:
                    print(f"PROFILE {describe(profile)}", flush=True)
            consumer.store_offsets(msg)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
