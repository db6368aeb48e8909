"""Tests for stream.core.events: every record is either an Event or a Rejected with a reason; nothing raises."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.events import KINDS, Event, Rejected, decode, format_ts, parse_ts

MAX_TEXT = 200
YEAR_2100_MS = 4102444800000
SCHEMA_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the schema's bound for epoch ms
TS_2026 = 1767225600000  # 2026-01-01T00:00:00Z

REVIEW: dict[str, Any] = {
    "event_id": "ev-1",
    "user_id": "u-1",
    "ts": "2026-01-01T00:00:00Z",
    "item_id": "sku-9",
    "category": "phone",
    "rating": 4,
    "text": "屏幕很好，物流快",
}
SEARCH: dict[str, Any] = {"event_id": "ev-2", "user_id": "u-2", "ts": TS_2026, "query": "蓝牙耳机"}
BASE = {"review": REVIEW, "search": SEARCH}
TEXT_KINDS = sorted(BASE)


def encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def with_(kind: str, **changes: Any) -> bytes:
    return encode({**BASE[kind], **changes})


def without(kind: str, field: str) -> bytes:
    return encode({k: v for k, v in BASE[kind].items() if k != field})


def check_outcome(result: object) -> None:
    """The decode contract: an Event, or a Rejected with a non-empty reason; accepted times are printable."""
    assert isinstance(result, (Event, Rejected)), result
    if isinstance(result, Rejected):
        assert isinstance(result.reason, str) and result.reason
        assert isinstance(result.error, str)
        return
    assert result.kind in KINDS
    assert isinstance(result.user_id, str) and result.user_id
    assert result.event_id is None or (isinstance(result.event_id, str) and result.event_id)
    assert result.text is None or (isinstance(result.text, str) and len(result.text) <= MAX_TEXT)
    if result.kind in TEXT_KINDS:
        assert isinstance(result.event_id, str) and isinstance(result.text, str)
    assert isinstance(result.ts_ms, int) and not isinstance(result.ts_ms, bool)
    assert result.ts_ms >= 0
    assert parse_ts(format_ts(result.ts_ms)) == result.ts_ms


# --- accepted events ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts, expected_ms",
    [
        ("2026-01-01T00:00:00Z", TS_2026),
        ("2026-01-01T08:00:00+08:00", TS_2026),
        ("2025-12-31T19:00:00-05:00", TS_2026),
        ("2026-01-01T00:00:00.123Z", TS_2026 + 123),
        (TS_2026, TS_2026),
        (0, 0),
    ],
)
@pytest.mark.parametrize("kind", ["review", "search"])
def test_valid_events_are_accepted(kind: str, ts: object, expected_ms: int) -> None:
    event = decode(kind, with_(kind, ts=ts), max_text_chars=MAX_TEXT)
    assert isinstance(event, Event), event
    assert event.kind == kind
    assert event.event_id == BASE[kind]["event_id"]
    assert event.user_id == BASE[kind]["user_id"]
    assert event.ts_ms == expected_ms
    assert event.text == BASE[kind][KINDS[kind][1]]
    assert event.fields["ts"] == ts
    check_outcome(event)


def test_optional_review_fields_may_be_null_or_absent() -> None:
    assert isinstance(decode("review", with_("review", category=None, rating=None), max_text_chars=MAX_TEXT), Event)
    assert isinstance(decode("review", without("review", "rating"), max_text_chars=MAX_TEXT), Event)
    assert isinstance(decode("review", without("review", "category"), max_text_chars=MAX_TEXT), Event)


@pytest.mark.parametrize("rating", [1, 5])
def test_rating_bounds_are_inclusive(rating: int) -> None:
    assert isinstance(decode("review", with_("review", rating=rating), max_text_chars=MAX_TEXT), Event)


def test_text_exactly_at_the_limit_is_accepted() -> None:
    event = decode("review", with_("review", text="好" * MAX_TEXT), max_text_chars=MAX_TEXT)
    assert isinstance(event, Event) and len(event.text) == MAX_TEXT


# --- rejected events ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, value, reason",
    [
        ("review", b'{"event_id": "e", ', "not valid JSON"),
        ("review", b"", "not valid JSON"),
        ("search", b"not json at all", "not valid JSON"),
        ("review", b'{"event_id": "\xff\xfe"}', "not valid JSON"),  # invalid UTF-8
        ("search", b"\xc3\x28", "not valid JSON"),  # invalid UTF-8 continuation byte
        ("review", b"[1, 2]", "not a JSON object"),
        ("review", b'"a string"', "not a JSON object"),
        ("search", b"42", "not a JSON object"),
        ("search", b"null", "not a JSON object"),
        ("review", without("review", "item_id"), "schema violation"),
        ("review", without("review", "text"), "schema violation"),
        ("search", without("search", "query"), "schema violation"),
        ("search", without("search", "ts"), "schema violation"),
        ("review", with_("review", user_id=42), "schema violation"),
        ("review", with_("review", event_id=""), "schema violation"),
        ("review", with_("review", text=["a"]), "schema violation"),
        ("search", with_("search", query=None), "schema violation"),
        ("review", with_("review", rating="5"), "schema violation"),
        ("review", with_("review", rating=True), "schema violation"),
        ("review", with_("review", rating=0), "schema violation"),
        ("review", with_("review", rating=6), "schema violation"),
        ("search", with_("search", ts=-1), "schema violation"),
        ("search", with_("search", ts=True), "schema violation"),
        ("search", with_("search", ts=SCHEMA_MAX_MS + 1), "schema violation"),
        ("review", with_("review", ts="2026-01-01T00:00:00"), "unparseable event time"),
        ("review", with_("review", ts="2026-01-01 08:00:00"), "unparseable event time"),
        ("search", with_("search", ts="2026-01-01"), "unparseable event time"),
        ("search", with_("search", ts="yesterday at noon"), "unparseable event time"),
        ("search", with_("search", ts="1969-12-31T23:59:59Z"), "unparseable event time"),
        ("review", with_("review", text="好" * (MAX_TEXT + 1)), "text too long"),
        ("search", with_("search", query="q" * (MAX_TEXT + 1)), "text too long"),
        ("click", with_("search"), "unknown event type"),
        ("review", None, "empty record"),
    ],
)
def test_bad_records_are_rejected_with_the_right_reason(kind: str, value: bytes | None, reason: str) -> None:
    result = decode(kind, value, max_text_chars=MAX_TEXT)
    assert isinstance(result, Rejected), result
    assert result.reason == reason
    assert result.error  # the detail that goes to the dead-letter topic


def test_schema_violation_names_the_field() -> None:
    result = decode("review", with_("review", rating=9), max_text_chars=MAX_TEXT)
    assert isinstance(result, Rejected) and "rating" in result.error


def test_naive_timestamp_error_says_so() -> None:
    result = decode("review", with_("review", ts="2026-01-01T00:00:00"), max_text_chars=MAX_TEXT)
    assert isinstance(result, Rejected) and "time zone" in result.error


# --- fuzzing: thousands of generated inputs, no exception escapes -------------------------

text_kinds = st.sampled_from(TEXT_KINDS)
all_kinds = st.sampled_from(sorted(KINDS))  # "never raises" holds for every contract, present and future

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
# Small on purpose: st.recursive costs several ms per example and three thousand are required.
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=5,
)
# One level deep is enough to replace a field with "the wrong kind of value", at a third of the cost.
shallow_json = json_leaves | st.lists(json_leaves, max_size=3) | st.dictionaries(st.text(max_size=6), json_leaves, max_size=3)

ms_values = st.integers(min_value=0, max_value=YEAR_2100_MS - 1)
zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """A zoned RFC 3339 text for an instant between 1970 and 2100, in any offset, Z or not."""
    ms = draw(ms_values)
    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    text = dt.astimezone(draw(zones)).isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds"])))
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


# short on purpose: generation cost dominates the fuzz tests; the length limits have explicit tests above
ids = st.text(min_size=1, max_size=12)
texts = st.text(max_size=30)


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(text_kinds)
    obj: dict[str, Any] = {"event_id": draw(ids), "user_id": draw(ids), "ts": draw(ms_values | rfc3339())}
    if kind == "review":
        obj["item_id"] = draw(ids)
        obj["text"] = draw(texts)
        if draw(st.booleans()):
            obj["category"] = draw(st.none() | st.text(max_size=64))
        if draw(st.booleans()):
            obj["rating"] = draw(st.none() | st.integers(min_value=1, max_value=5))
    else:
        obj["query"] = draw(texts)
    return kind, obj


@settings(max_examples=300, deadline=None)
@given(valid_events())
def test_generated_valid_events_are_accepted(kind_and_obj: tuple[str, dict[str, Any]]) -> None:
    kind, obj = kind_and_obj
    event = decode(kind, encode(obj), max_text_chars=MAX_TEXT)
    assert isinstance(event, Event), event
    assert event.ts_ms == parse_ts(obj["ts"])
    assert (event.event_id, event.user_id, event.text) == (obj["event_id"], obj["user_id"], obj[KINDS[kind][1]])
    check_outcome(event)


# Fixed valid events for the fuzz tests: drawing fresh ones each time triples the run time
# without finding more (test_generated_valid_events_are_accepted covers the variety).
TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("review", REVIEW),
    ("review", {**REVIEW, "ts": TS_2026, "rating": None, "category": None}),
    ("review", {k: v for k, v in REVIEW.items() if k not in ("rating", "category")} | {"ts": "2026-03-01T12:30:00.250+08:00"}),
    ("search", SEARCH),
    ("search", {**SEARCH, "ts": "2025-12-31T19:00:00-05:00", "query": "iphone 手机壳"}),
]
templates = st.sampled_from(TEMPLATES)


@st.composite
def corrupted_events(draw: st.DrawFn) -> bytes:
    """A valid event's bytes with a few bytes overwritten, inserted or cut off."""
    data = bytearray(encode(draw(templates)[1]))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        pos = draw(st.integers(min_value=0, max_value=len(data)))
        op = draw(st.sampled_from(["set", "insert", "truncate"]))
        byte = draw(st.integers(min_value=0, max_value=255))
        if op == "set" and pos < len(data):
            data[pos] = byte
        elif op == "insert":
            data.insert(pos, byte)
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=all_kinds, value=st.binary(max_size=200) | corrupted_events())
def test_fuzz_arbitrary_bytes_never_raise(kind: str, value: bytes) -> None:
    check_outcome(decode(kind, value, max_text_chars=MAX_TEXT))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=all_kinds,
    value=json_values
    | st.fixed_dictionaries(
        {"event_id": json_leaves, "user_id": json_leaves, "ts": json_leaves},
        optional={"item_id": json_leaves, "text": json_leaves, "query": json_leaves, "rating": json_values},
    ),
)
def test_fuzz_arbitrary_json_values_never_raise(kind: str, value: Any) -> None:
    result = decode(kind, encode(value), max_text_chars=MAX_TEXT)
    check_outcome(result)
    if not isinstance(value, dict):
        assert isinstance(result, Rejected) and result.reason == "not a JSON object"


STRING_FIELDS = {"event_id", "user_id", "item_id", "text", "query"}


MUTABLE_FIELDS = sorted({f for _, obj in TEMPLATES for f in obj} | {"rating", "extra"})


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=templates, field=st.sampled_from(MUTABLE_FIELDS), new=shallow_json)
def test_fuzz_one_field_mutated_never_raises(event: tuple[str, dict[str, Any]], field: str, new: Any) -> None:
    kind, obj = event
    mutated = {**obj, field: new}
    result = decode(kind, encode(mutated), max_text_chars=MAX_TEXT)
    check_outcome(result)
    if field in STRING_FIELDS and field in obj and not isinstance(new, str):
        assert isinstance(result, Rejected) and result.reason == "schema violation"
    if isinstance(result, Event):
        assert result.fields == mutated


# --- parse_ts / format_ts -----------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(ms=ms_values)
def test_format_parse_round_trip(ms: int) -> None:
    text = format_ts(ms)
    assert text.endswith("Z") and len(text) == len("2026-01-01T00:00:00.000Z")
    assert parse_ts(text) == ms
    assert parse_ts(ms) == ms


@settings(max_examples=300, deadline=None)
@given(ms=ms_values, zone=zones)
def test_parse_ts_honours_the_offset(ms: int, zone: timezone) -> None:
    dt = (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)).astimezone(zone)
    assert parse_ts(dt.isoformat(timespec="milliseconds")) == ms


def test_format_ts_docstring_values() -> None:
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"
    assert format_ts(TS_2026 + 123) == "2026-01-01T00:00:00.123Z"


@pytest.mark.parametrize("bad", [True, 1.5, None, [], "not a time", "2026-01-01T00:00:00"])
def test_parse_ts_rejects_non_times_with_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_ts(bad)


# --- event-time edges ----------------------------------------------------------------------


@pytest.mark.parametrize("ms", [SCHEMA_MAX_MS, 253402300799998, 200000000000123])
def test_format_ts_round_trips_over_the_whole_schema_range(ms: int) -> None:
    event = decode("search", with_("search", ts=ms), max_text_chars=MAX_TEXT)
    assert isinstance(event, Event) and event.ts_ms == ms
    assert parse_ts(format_ts(event.ts_ms)) == ms


def test_accepted_event_time_can_always_be_formatted() -> None:
    result = decode("search", with_("search", ts="9999-12-31T23:00:00-05:00"), max_text_chars=MAX_TEXT)
    check_outcome(result)
    if isinstance(result, Event):
        format_ts(result.ts_ms)
