"""Every wire format of the service, built and parsed here and nowhere else.

Internal topic ``profile-updates`` (stage 1 -> stage 2) carries two kinds of message:
an :class:`Update` (one event of one user, on the partition of its user id) or a
:class:`Tick` (the event-time clock, sent to every partition), packed in order per
partition (:func:`pack_internal`). :func:`parse_internal` is the one place that tells
them apart. Output topics: ``dead-letters`` (:func:`dead_letter`), ``churn-alerts``
(:func:`churn_alert`) and ``profiles`` (:func:`profile_view`, the envelope of the public
profile whose sections :mod:`stream.core.profile` computes). JSON Schemas for the output
topics live in ``schemas/``; the internal messages are private to the service.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Literal, TypedDict

import numpy as np
import orjson

from stream.core.events import format_ts
from stream.core.redact import ERROR_LIMIT, encodable, mask_head, redact_bytes, redact_key, unescape

PROFILE_SCHEMA_VERSION = 3  # 3: interests.interest_vector may be float16/base64 (interest_vector_encoding)
VectorEncoding = Literal["float16-base64", "json"]
VECTOR_ENCODINGS: tuple[str, ...] = ("float16-base64", "json")


class Kind(StrEnum):
    """Kinds of message on the internal topic; the event kinds come from the input contracts."""

    REVIEW = "review"
    SEARCH = "search"
    ORDER = "order"
    USER_ATTRIBUTES = "user_attributes"
    FORGET = "forget"
    TICK = "tick"


class Update(TypedDict):
    """One event of one user, as stage 2 applies it (idempotent by ``source`` + ``offset``)."""

    kind: str
    user_id: str
    event_id: str
    ts: int
    source: str  # "topic/partition" of the input record
    offset: int
    watermark: int
    data: dict[str, Any]
    embedding: str | None  # base64 little-endian float32 (pack_vector)
    cluster: int | None
    keywords: list[str] | None
    model_version: str | None
    topic_of: list[int] | None  # coarse topic of every cluster (groups of clusters, named by their smallest member)
    topic_keywords: list[str] | None  # keywords of this update's topic
    generic: bool  # the cluster says how things are said (praise, delivery) rather than what: ranked lower


class Tick(TypedDict):
    """Event-time clock: stage 2 re-assesses every user of the partition at ``watermark``."""

    kind: Literal["tick"]
    watermark: int


class ChurnAlert(TypedDict):
    alert_id: str
    user_id: str
    type: Literal["churn_risk", "recovered"]
    score: float
    level: str
    reasons: list[dict[str, Any]]
    as_of: str
    last_event_ts: str
    profile_ref: dict[str, str]


def pack_vector(v: np.ndarray) -> str:
    """float32 vector as base64 text: exact and 4x smaller than a JSON list."""
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")


def unpack_vector(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4")


def encode_interest_vector(v: np.ndarray, encoding: str, digits: int = 4) -> str | list[float]:
    """The public interest vector in ``encoding``.

    ``float16-base64``: little-endian IEEE half floats as base64 text, 2 bytes a dimension (a
    unit vector's components keep about 3 significant digits, plenty for cosine similarity):
    about a third of ``json``, a list of numbers rounded to ``digits``. Empty: "" or [].
    """
    if encoding == "json":
        return np.round(np.asarray(v, dtype=np.float64), digits).tolist()
    if encoding == "float16-base64":
        return base64.b64encode(np.asarray(v, dtype="<f2").tobytes()).decode("ascii")
    raise ValueError(f"unknown vector encoding {encoding!r}; expected one of {VECTOR_ENCODINGS}")


def decode_interest_vector(value: str | list[float]) -> np.ndarray:
    """float64 array from either encoding of :func:`encode_interest_vector` (for consumers and tests)."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f2").astype(np.float64)
    return np.asarray(value, dtype=np.float64)


def make_update(
    *,
    kind: str,
    user_id: str,
    event_id: str,
    ts_ms: int,
    source: str,
    offset: int,
    watermark: int,
    data: Mapping[str, Any] | None = None,
    embedding: np.ndarray | None = None,
    cluster: int | None = None,
    keywords: list[str] | None = None,
    model_version: str | None = None,
    topic_of: list[int] | None = None,
    topic_keywords: list[str] | None = None,
    generic: bool = False,
) -> Update:
    """The message stage 1 sends to the per-user stage, keyed by ``user_id``."""
    return {
        "kind": str(Kind(kind)),
        "user_id": user_id,
        "event_id": event_id,
        "ts": ts_ms,
        "source": source,
        "offset": offset,
        "watermark": watermark,
        "data": dict(data or {}),
        "embedding": None if embedding is None else pack_vector(embedding),
        "cluster": None if cluster is None else int(cluster),
        "keywords": keywords,
        "model_version": model_version,
        "topic_of": None if topic_of is None else [int(t) for t in topic_of],
        "topic_keywords": topic_keywords,
        "generic": bool(generic),
    }


def make_tick(watermark: int) -> Tick:
    """Event-time clock message: lets stage 2 re-assess users who sent nothing (churn)."""
    return {"kind": "tick", "watermark": int(watermark)}


PACK_BYTES = 512 * 1024  # one internal message at most: half of Kafka's default message.max.bytes
_PACK_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def pack_internal(messages: Iterable[Update | Tick], max_bytes: int = PACK_BYTES) -> list[bytes]:
    """Consecutive messages for one partition of the internal topic, packed in order into as few values
    as fit ``max_bytes`` each (a lone message larger than that travels alone).

    One Kafka message per partition and micro-batch instead of one per event: the per-message costs of
    sending and consuming (Faust's stream, the client, the JSON codec) are most of what an event without
    text costs the worker.
    """
    values: list[bytes] = []
    chunk: list[bytes] = []
    size = 2
    for message in messages:
        encoded = orjson.dumps(message, option=_PACK_OPTIONS)
        if chunk and size + len(encoded) + 1 > max_bytes:
            values.append(b"[" + b",".join(chunk) + b"]")
            chunk, size = [], 2
        chunk.append(encoded)
        size += len(encoded) + 1
    if chunk:
        values.append(b"[" + b",".join(chunk) + b"]")
    return values


def unpack_internal(value: bytes) -> list[Mapping[str, Any]]:
    """The messages of one internal value, in order (a lone object, as older workers sent, is one message)."""
    decoded = orjson.loads(value)
    return decoded if isinstance(decoded, list) else [decoded]


def parse_internal(value: Mapping[str, Any]) -> Update | Tick:
    """A message of the internal topic, by kind (raises ValueError on an unknown kind)."""
    kind = Kind(value.get("kind"))
    if kind is Kind.TICK:
        return make_tick(int(value["watermark"]))
    return value  # type: ignore[return-value]  # written by make_update of this same service


def dead_letter(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str, error: str,
    failed_at_ms: int, pseudonym_key: bytes | None = None,
) -> dict[str, Any]:
    """The value published on the dead-letter topic (schemas/dead-letter.schema.json).

    Never the raw key or bytes, which may hold personal data masking cannot recognise in raw
    form: the key travels as its pseudonym (or not at all), the value as decoded, masked text
    (:func:`stream.core.redact.redact_bytes`), cut to fit well inside a Kafka message. The
    source position leads to the original record for whoever may read the input topic.
    """
    text = None if value is None else redact_bytes(value)
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": redact_key(key, pseudonym_key),
        "value_text": None if text is None else text.value,
        "value_bytes": None if value is None else len(value),
        "truncated": bool(text and text.truncated),
        "pii_masked": [] if text is None else list(text.kinds),
        "reason": reason,
        "error": encodable(mask_head(unescape(error), ERROR_LIMIT).value),  # read as written, not as repr() shows it
        "failed_at": format_ts(failed_at_ms),
    }


def churn_alert(
    *, user_id: str, edge: Literal["alert", "recovered"], as_of_ms: int, score: float, level: str,
    reasons: list[dict[str, Any]], last_event_ms: int,
) -> ChurnAlert:
    """A transition of a user's churn state (schemas/churn-alert.schema.json); the id makes resends idempotent."""
    return {
        "alert_id": f"{user_id}:{edge}:{as_of_ms}",
        "user_id": user_id,
        "type": "churn_risk" if edge == "alert" else "recovered",
        "score": score,
        "level": level,
        "reasons": reasons,
        "as_of": format_ts(as_of_ms),
        "last_event_ts": format_ts(last_event_ms),
        "profile_ref": {"topic_key": user_id, "as_of": format_ts(as_of_ms)},
    }


def profile_view(
    *, user_id: str, updated_at_ms: int, as_of_ms: int, first_event_ms: int | None, last_event_ms: int | None,
    sections: Mapping[str, Any], model_version: str | None,
) -> dict[str, Any]:
    """The public profile on the ``profiles`` topic and GET /profiles (schemas/profile.schema.json).

    ``sections`` holds basic, consumption, behaviour, interests, sentiment and churn.
    """
    return {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "user_id": user_id,
        "updated_at": format_ts(updated_at_ms),
        "as_of": format_ts(as_of_ms),
        "first_event_ts": None if first_event_ms is None else format_ts(first_event_ms),
        "last_event_ts": None if last_event_ms is None else format_ts(last_event_ms),
        **{name: sections[name] for name in ("basic", "consumption", "behaviour", "interests", "sentiment", "churn")},
        "model_version": model_version,
    }
