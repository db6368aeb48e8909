"""The edge of stage 1: a raw Kafka record becomes a protected :class:`Event` or a dead letter.

Decoding and validation are :func:`stream.core.events.decode`; here the record's topic picks
the contract, orders in another currency are refused, user ids are pseudonymised (or
refused when they are personal data and no key is set) and free-form fields are scrubbed,
so nothing after this point sees personal data.

Identifiers and attribute values are read strictly (:func:`stream.core.privacy.contains_pii`):
a user id such as ``138/1234/5678`` is refused without a pseudonym key (the dead letter masks
it), an event id holding one becomes the record position, and the fields in ``SCRUBBED`` are
dropped. Fields the event's schema does not declare are dropped (nothing reads them); every other
string is masked (strictly, but the review or search text as prose).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from decimal import Decimal
from typing import Any

from stream.core.events import KINDS, Event, Limits, Reason, Rejected, decode, schema
from stream.core.messages import dead_letter
from stream.core.privacy import contains_pii, pseudonym, scrub
from stream.core.profile import ATTRIBUTES
from stream.core.redact import mask_head, mask_tree, unescape

SCRUBBED = ("category", "region", "occupation", "item_id", "order_id")  # free-form strings that may reach outputs
# Fields decode() has validated or rewritten into a fixed format (timestamps, exact decimals, enums): they
# hold no free text, and strict reading would take a timestamp's 17 digits for an ID number.
STRUCTURED = ("ts", "registered_at", "amount", "currency", "age_band", "gender")


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as raw as it arrived."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that cannot be processed, with the reason; keyed by its source position."""

    record: Record
    reason: str
    error: str
    pseudonym_key: bytes | None = None  # the record key is published as its pseudonym, or not at all

    @property
    def key(self) -> str:
        return f"{self.record.source}/{self.record.offset}"

    def message(self, failed_at_ms: int) -> dict[str, Any]:
        """The value for the dead-letter topic (see :func:`stream.core.messages.dead_letter`)."""
        r = self.record
        return dead_letter(topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                           reason=self.reason, error=self.error, failed_at_ms=failed_at_ms,
                           pseudonym_key=self.pseudonym_key)


def parse_dead_letter_key(key: bytes | None) -> tuple[str, int] | None:
    """("topic/partition", offset) from a dead-letter key (:attr:`DeadLetter.key`); None for any other key.

    >>> parse_dead_letter_key(b"reviews/2/41"), parse_dead_letter_key(b"not ours"), parse_dead_letter_key(None)
    (('reviews/2', 41), None, None)
    """
    try:
        text = (key or b"").decode("utf-8")
        source, _, offset = text.rpartition("/")
        topic, _, partition = source.rpartition("/")
        position = (f"{topic}/{int(partition)}", int(offset))
    except ValueError:  # not UTF-8, or not numbers
        return None
    return position if topic and f"{position[0]}/{position[1]}" == text else None


class Intake:
    """Decode + protect: the only code that sees raw user ids and raw free-form fields."""

    def __init__(
        self, kind_of_topic: Mapping[str, str], *, limits: Limits, currency: str = "CNY",
        pseudonym_key: bytes | None = None,
    ) -> None:
        self.kind_of_topic = dict(kind_of_topic)
        self.limits = limits
        self.currency = currency
        self.pseudonym_key = pseudonym_key

    def decode(self, record: Record, *, now_ms: int) -> Event | Rejected:
        """The record as a protected event, or why not; ``now_ms`` (wall clock) bounds event time.

        Never raises: a record that makes decoding fail in a way no rule foresaw is dead-lettered as
        such (and can be replayed once fixed) rather than stopping the worker at every restart.
        """
        try:
            return self._decode(record, now_ms)
        except Exception as exc:  # noqa: BLE001 - the poison-record guard; the reason names the failure
            return Rejected(Reason.FAILED, f"{type(exc).__name__}: {mask_head(unescape(str(exc)), 200).value}")

    def _decode(self, record: Record, now_ms: int) -> Event | Rejected:
        kind = self.kind_of_topic.get(record.topic)
        if kind is None:
            return Rejected(Reason.UNKNOWN_KIND, f"topic {record.topic!r} has no event contract")
        event = decode(kind, record.value, now_ms=now_ms, limits=self.limits)
        if isinstance(event, Rejected):
            return event
        if kind == "order" and event.fields["currency"] != self.currency:
            return Rejected(Reason.CURRENCY, f"{event.fields['currency']} != {self.currency} (STREAM_CURRENCY)")
        return self._protect(record, event)

    def _protect(self, record: Record, event: Event) -> Event | Rejected:
        """Pseudonymise the user id (or refuse one that is personal data), drop free-form fields that hold
        personal data, drop fields outside the contract and mask every other decoded string."""
        if self.pseudonym_key:
            user = pseudonym(event.user_id, self.pseudonym_key)
        elif contains_pii(event.user_id):
            return Rejected(Reason.PII_USER_ID, "set STREAM_PSEUDONYM_KEY to accept such ids as pseudonyms")
        else:
            user = event.user_id
        event_id = event.event_id
        if event_id is None or contains_pii(event_id):
            event_id = f"{record.source}/{record.offset}"
        known = _contract_fields(event.kind)  # nothing reads other fields: dropped, not masked and carried
        fields = {k: v for k, v in event.fields.items() if k in known}
        fields.update({k: scrub(fields[k]) for k in SCRUBBED if k in fields})
        text_field = KINDS[event.kind][1]
        prose = {text_field: fields.pop(text_field)} if text_field in fields else {}
        structured = {k: fields.pop(k) for k in STRUCTURED if k in fields}
        fields = {
            **mask_tree(fields, limit=sys.maxsize, numbers=False).value,
            **mask_tree(prose, limit=sys.maxsize, numbers=False, strict=False).value,
            **structured,
            "user_id": user,
            "event_id": event_id,
        }
        return replace(event, user_id=user, event_id=event_id, fields=fields)


@cache
def _contract_fields(kind: str) -> frozenset[str]:
    return frozenset(schema(KINDS[kind][0])["properties"])


def plain_data(event: Event) -> dict[str, Any]:
    """The ``data`` of an update for an event without text (order, attributes, forget)."""
    f = event.fields
    if event.kind == "order":
        return {"cents": int(Decimal(f["amount"]) * 100), "category": f.get("category"), "items": f["items"]}
    if event.kind == "forget":
        return {}
    return {name: f[name] for name in ATTRIBUTES if f.get(name) is not None}
