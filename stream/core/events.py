"""Decoding and validation of input events at the edge.

Every record is either an :class:`Event` or a :class:`Rejected` with a reason from
:class:`Reason` (the enum of ``schemas/dead-letter.schema.json``); nothing here raises on
input, so a worker never dies on a bad record. Contracts are the JSON Schemas in
``schemas/``, compiled once with fastjsonschema (about 10x faster than jsonschema per event).

Beyond the schemas, :func:`decode` enforces what a schema cannot say: no duplicate keys at
any depth (last-wins parsing would let ``user_id`` disagree with itself), event time within
[2000-01-01, wall clock + ``max_future_ms``] (one record from year 9999 would otherwise move
the watermark for everyone), order amounts exact from the JSON literal, and a hard text size.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from stream.core.redact import mask_head
from stream.core.text import mask_pii

MAX_TS_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the largest time RFC 3339 can write
#: Oldest accepted event time, 2000-01-01T00:00:00Z: older times are zero defaults or epoch
#: seconds sent as milliseconds (2026 in seconds reads as January 1970), not e-commerce events.
MIN_EVENT_TS_MS = 946684800000
MAX_AMOUNT = Decimal("999999999999.99")  # what the text form allows: 12 integer digits, 2 decimals
_CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SCHEMA_DIR = Path(str(files("stream").joinpath("schemas")))  # package data; schemas/ at the repository root links here

#: event kind -> (schema file, field holding the free text, if any)
KINDS: dict[str, tuple[str, str | None]] = {
    "review": ("review.schema.json", "text"),
    "search": ("search.schema.json", "query"),
    "order": ("order.schema.json", None),
    "user_attributes": ("user-attributes.schema.json", None),
    "forget": ("forget.schema.json", None),
}


class Reason(StrEnum):
    """Every reason a record can be dead-lettered for; equals the enum in dead-letter.schema.json."""

    EMPTY = "empty record"
    NOT_JSON = "not valid JSON"
    NOT_OBJECT = "not a JSON object"
    DUPLICATE_KEY = "duplicate key"
    SCHEMA = "schema violation"
    BAD_TIME = "unparseable event time"
    FUTURE_TIME = "event time in the future"
    OLD_TIME = "event time too old"
    TEXT_TOO_LONG = "text too long"
    UNKNOWN_KIND = "unknown event type"
    CURRENCY = "unsupported currency"
    PII_USER_ID = "personal data in user_id"
    FAILED = "processing failed"  # no rule foresaw what went wrong: the error names the exception


_PARTIAL_PLACEHOLDER = re.compile(r"\[[A-Z]{0,8}$")  # a masking placeholder the cut went through


@dataclass(frozen=True, slots=True)
class Limits:
    """What :func:`decode` accepts beyond the schemas; the worker builds it from its settings."""

    max_text_chars: int  # longer texts are cut to this for the encoder (the cut is recorded)
    reject_text_chars: int  # longer texts are rejected: such records approach the broker's message limit
    max_future_ms: int  # event time may be at most this far ahead of the wall clock


@dataclass(frozen=True, slots=True)
class Event:
    """A valid input event; ``ts_ms`` is event time in epoch milliseconds; ``text`` is None for non-text kinds.

    ``fields`` is the record's object with the text cut like ``text`` and an order ``amount``
    as exact 2-decimal text; ``text_cut`` counts the characters cut from the text.
    """

    kind: str
    event_id: str | None
    user_id: str
    ts_ms: int
    text: str | None
    fields: dict[str, Any]
    text_cut: int = 0


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record cannot be processed; it goes to the dead-letter topic."""

    reason: Reason
    error: str


@cache
def schema(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"schema {path} not found: run from a checkout or an editable install")
    return orjson.loads(path.read_bytes())


@cache
def _validator(kind: str) -> Any:
    return fastjsonschema.compile(schema(KINDS[kind][0]), formats={"date-time": lambda _: True})


def parse_ts(value: object) -> int:
    """Event time in epoch milliseconds from RFC 3339 text (with a zone) or epoch milliseconds.

    >>> parse_ts("2026-01-01T00:00:00Z"), parse_ts(1767225600000)
    (1767225600000, 1767225600000)
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int):
        ms = value
    else:
        ms = _parse_text_ts(value)
    if not 0 <= ms <= MAX_TS_MS:
        raise ValueError("outside 1970-01-01 .. 9999-12-31 (UTC)")
    return ms


# RFC 3339 date-time (section 5.6): "T"/"Z" in either case, a space for the T (section 5.6's note),
# any fraction, a leap second (23:59:60 UTC, read as its last millisecond of 23:59:59, as POSIX time
# does); also the ISO 8601 offsets +08 and +0800 (PostgreSQL's timestamptz text writes +08).
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(?:\.(\d+))?"
    r"([Zz]|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)", re.ASCII
)
_ZONE = re.compile(r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$", re.ASCII)


def _parse_text_ts(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError(f"expected RFC 3339 text or epoch milliseconds, got {type(value).__name__}")
    m = _RFC3339.fullmatch(value)
    if m is None:
        hint = "" if _ZONE.search(value) else " (no time zone?)"
        raise ValueError(f"not RFC 3339 date-time text like 2026-01-01T08:00:00+08:00{hint}")
    date, minutes, seconds, fraction, zone = m.groups()
    leap = seconds == "60"
    millis = "999" if leap else (fraction or "")[:3].ljust(3, "0")
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif len(zone) != 6:  # +08 or +0800
        zone = f"{zone[:3]}:{zone[3:5] or '00'}"
    dt = datetime.fromisoformat(f"{date}T{minutes}:{'59' if leap else seconds}.{millis}{zone}")
    ms = (dt - _EPOCH) // timedelta(milliseconds=1)
    if leap and (ms + 1) % 86_400_000:
        raise ValueError("a leap second (:60) is only ever 23:59:60 UTC")
    return ms


def format_ts(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the form every output uses.

    >>> format_ts(1767225600123)
    '2026-01-01T00:00:00.123Z'
    """
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    """The date and time of a whole second: a profile view formats several timestamps, mostly recent ones."""
    return (_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds").removesuffix("+00:00")


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey(Counter(k for k, _ in pairs).most_common(1)[0][0])
    return obj


# orjson (strict UTF-8, no NaN, no lone surrogates) decides what is JSON; the standard parser then
# builds the object, refusing duplicate keys at any depth and keeping integers of any size exact
# (orjson turns those beyond 64 bits into floats). Orders parse once more for the amount's literal.
_UNIQUE = json.JSONDecoder(object_pairs_hook=_unique_pairs)
_DECIMALS = json.JSONDecoder(parse_float=Decimal)


def decode(kind: str, value: bytes | None, *, now_ms: int, limits: Limits) -> Event | Rejected:
    """Turn raw record bytes of a ``kind`` topic into an event, or say why not.

    ``now_ms`` is the wall clock (epoch milliseconds) that bounds event time from above.
    """
    if kind not in KINDS:
        return Rejected(Reason.UNKNOWN_KIND, f"no contract for {kind!r}")
    if value is None:
        return Rejected(Reason.EMPTY, "record has no value")
    try:
        strict = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected(Reason.NOT_JSON, str(exc))
    if not isinstance(strict, dict):
        return Rejected(Reason.NOT_OBJECT, f"top-level {type(strict).__name__}")
    text = value.decode("utf-8")
    try:
        obj = _UNIQUE.decode(text)
    except _DuplicateKey as exc:
        key = mask_head(str(exc), 64).value  # masked before the cut, and a secret the cut splits is dropped
        return Rejected(Reason.DUPLICATE_KEY, f"key {key!r} appears twice in one object")
    except (ValueError, RecursionError) as exc:  # orjson accepted it, so only nesting deeper than Python's stack
        return Rejected(Reason.NOT_JSON, str(exc)[:200])
    try:
        _validator(kind)(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        return Rejected(Reason.SCHEMA, exc.message)
    try:
        ts_ms = parse_ts(obj["ts"])
    except (ValueError, OverflowError, OSError) as exc:
        return Rejected(Reason.BAD_TIME, str(exc))
    if ts_ms > now_ms + limits.max_future_ms:
        return Rejected(
            Reason.FUTURE_TIME,
            f"{format_ts(ts_ms)} is more than {limits.max_future_ms / 1000:g} s after the clock ({format_ts(now_ms)})",
        )
    if ts_ms < MIN_EVENT_TS_MS:
        return Rejected(Reason.OLD_TIME, f"{format_ts(ts_ms)} is before {format_ts(MIN_EVENT_TS_MS)} (epoch seconds?)")
    text_field = KINDS[kind][1]
    free_text: str | None = obj[text_field] if text_field else None
    cut = 0
    if free_text is not None:
        if len(free_text) > limits.reject_text_chars:
            return Rejected(Reason.TEXT_TOO_LONG, f"{len(free_text)} characters > limit {limits.reject_text_chars}")
        if len(free_text) > limits.max_text_chars:
            # Mask the whole text before cutting it: a cut through a phone number would leave a
            # fragment that masking can no longer recognise.
            free_text = mask_pii(free_text)[0]
            kept = _PARTIAL_PLACEHOLDER.sub("", free_text[: limits.max_text_chars])  # no "[PHON" left at the cut
            cut = len(free_text) - len(kept)
            free_text = obj[text_field] = kept
    if kind == "order":
        amount = _exact_amount(_DECIMALS.decode(text)["amount"])
        if isinstance(amount, Rejected):
            return amount
        obj["amount"] = amount
    if kind == "user_attributes" and obj.get("registered_at") is not None:
        try:
            obj["registered_at"] = format_ts(parse_ts(obj["registered_at"]))
        except (ValueError, OverflowError, OSError) as exc:
            return Rejected(Reason.BAD_TIME, f"registered_at: {exc}")
    return Event(kind, obj.get("event_id"), obj["user_id"], ts_ms, free_text, obj, cut)


def _exact_amount(literal: str | int | Decimal) -> str | Rejected:
    """An order amount as exact 2-decimal text, from its JSON literal (text or number), never via a float.

    >>> _exact_amount(Decimal("129.9")), _exact_amount(12), _exact_amount("0.5")
    ('129.90', '12.00', '0.50')
    """
    shown = str(literal)[:40]
    amount = Decimal(literal).copy_abs()  # exact (abs() rounds to 28 digits); the schema refused negatives; folds -0
    if amount > MAX_AMOUNT:
        return Rejected(Reason.SCHEMA, f"amount {shown} is above {MAX_AMOUNT}")
    cents = amount.quantize(_CENT)  # at most 14 digits: exact under the default 28-digit context
    if cents != amount:
        return Rejected(Reason.SCHEMA, f"amount {shown} has more than 2 decimal places")
    return f"{cents:f}"
