"""A churn-alert subscriber (e.g. a retention campaign trigger) on the ``churn-alerts`` topic.

Alerts are edge-triggered: one ``churn_risk`` when a user's risk crosses the alert threshold,
one ``recovered`` when it falls back; each carries the score, level and the reasons with their
contributions. Every alert is validated against the package's ``churn-alert.schema.json``; a
record that does not match is reported and skipped. ``alert_id`` is stable, so a redelivered
alert can be recognised and not acted on twice.

    python examples/churn_alert_subscriber.py --broker 127.0.0.1:9092 --group retention
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import fastjsonschema
from confluent_kafka import Consumer
from profiles_consumer import records, validator


def act(alert: dict[str, Any]) -> str:
    """What a retention system would do; here, a line to print."""
    reasons = "; ".join(f"{r['detail']} (+{r['contribution']})" for r in alert["reasons"]) or "-"
    action = "start win-back offer" if alert["type"] == "churn_risk" else "stop win-back offer"
    return f"{alert['type'].upper()} {alert['user_id']} score={alert['score']} level={alert['level']} -> {action}: {reasons}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="churn-alerts")
    ap.add_argument("--group", default="churn-alert-example")
    ap.add_argument("--idle-timeout", type=float, default=None, help="stop after this many seconds without records")
    args = ap.parse_args(argv)

    validate = validator("churn-alert.schema.json")
    seen: set[str] = set()
    consumer = Consumer({
        "bootstrap.servers": args.broker,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.offset.store": False,
    })
    consumer.subscribe([args.topic])
    try:
        for msg in records(consumer, args.idle_timeout):
            try:
                alert = validate(json.loads(msg.value() or b"null"))
            except (ValueError, fastjsonschema.JsonSchemaException) as exc:
                print(f"INVALID {msg.topic()}/{msg.partition()}/{msg.offset()}: {exc}", file=sys.stderr, flush=True)
            else:
                if alert["alert_id"] not in seen:
                    seen.add(alert["alert_id"])
                    print(act(alert), flush=True)
            consumer.store_offsets(msg)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
