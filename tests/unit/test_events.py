"""Tests for stream.core.events: every record is either an Event or a Rejected with a reason; nothing raises."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.events import KINDS, MIN_EVENT_TS_MS, Event, Limits, Reason, Rejected, decode, format_ts, parse_ts, schema

MAX_TEXT = 200
HARD_TEXT = 1000
FUTURE_MS = 300_000
LIMITS = Limits(max_text_chars=MAX_TEXT, reject_text_chars=HARD_TEXT, max_future_ms=FUTURE_MS)
YEAR_2100_MS = 4102444800000
SCHEMA_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the schema's bound for epoch ms
TS_2026 = 1767225600000  # 2026-01-01T00:00:00Z
NOW_MS = TS_2026 + 180 * 86_400_000  # the wall clock of these tests: 2026-06-30
DEAD_LETTER_REASONS = set(schema("dead-letter.schema.json")["properties"]["reason"]["enum"])

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


def dec(kind: str, value: bytes | None, now_ms: int = NOW_MS) -> Event | Rejected:
    return decode(kind, value, now_ms=now_ms, limits=LIMITS)


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
        assert result.reason in DEAD_LETTER_REASONS
        assert isinstance(result.error, str)
        return
    assert result.kind in KINDS
    assert isinstance(result.user_id, str) and result.user_id
    assert result.event_id is None or (isinstance(result.event_id, str) and result.event_id)
    assert result.text is None or (isinstance(result.text, str) and len(result.text) <= MAX_TEXT)
    if result.kind in TEXT_KINDS:
        assert isinstance(result.event_id, str) and isinstance(result.text, str)
    assert isinstance(result.ts_ms, int) and not isinstance(result.ts_ms, bool)
    assert MIN_EVENT_TS_MS <= result.ts_ms <= NOW_MS + FUTURE_MS
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
        (MIN_EVENT_TS_MS, MIN_EVENT_TS_MS),
        ("2000-01-01T08:00:00+08:00", MIN_EVENT_TS_MS),
        (NOW_MS + FUTURE_MS, NOW_MS + FUTURE_MS),
    ],
)
@pytest.mark.parametrize("kind", ["review", "search"])
def test_valid_events_are_accepted(kind: str, ts: object, expected_ms: int) -> None:
    event = dec(kind, with_(kind, ts=ts))
    assert isinstance(event, Event), event
    assert event.kind == kind
    assert event.event_id == BASE[kind]["event_id"]
    assert event.user_id == BASE[kind]["user_id"]
    assert event.ts_ms == expected_ms
    assert event.text == BASE[kind][KINDS[kind][1]]
    assert event.fields["ts"] == ts
    check_outcome(event)


def test_optional_review_fields_may_be_null_or_absent() -> None:
    assert isinstance(dec("review", with_("review", category=None, rating=None)), Event)
    assert isinstance(dec("review", without("review", "rating")), Event)
    assert isinstance(dec("review", without("review", "category")), Event)


@pytest.mark.parametrize("rating", [1, 5])
def test_rating_bounds_are_inclusive(rating: int) -> None:
    assert isinstance(dec("review", with_("review", rating=rating)), Event)


def test_text_exactly_at_the_limit_is_accepted() -> None:
    event = dec("review", with_("review", text="好" * MAX_TEXT))
    assert isinstance(event, Event) and len(event.text) == MAX_TEXT and event.text_cut == 0


@pytest.mark.parametrize("kind, field", [("review", "text"), ("search", "query")])
def test_long_text_is_cut_for_the_encoder_and_the_cut_recorded(kind: str, field: str) -> None:
    text = "好" * MAX_TEXT + "尾" * (HARD_TEXT - MAX_TEXT)
    event = dec(kind, with_(kind, **{field: text}))
    assert isinstance(event, Event)
    assert event.text == "好" * MAX_TEXT and event.fields[field] == event.text
    assert event.text_cut == HARD_TEXT - MAX_TEXT


@pytest.mark.parametrize("ts", [NOW_MS + FUTURE_MS + 1, "9999-12-31T23:59:59.999Z"])
def test_future_event_time_is_judged_against_the_injected_clock(ts: object) -> None:
    rejected = dec("search", with_("search", ts=ts))
    assert isinstance(rejected, Rejected) and rejected.reason == "event time in the future"
    assert "after the clock" in rejected.error
    later = parse_ts(ts)
    assert isinstance(dec("search", with_("search", ts=ts), now_ms=later), Event)  # the same record, once it is due


def test_event_id_and_user_id_cannot_disagree_with_themselves() -> None:
    value = b'{"event_id": "e", "user_id": "u-1", "ts": 1767225600000, "query": "q", "user_id": "u-2"}'
    rejected = dec("search", value)
    assert isinstance(rejected, Rejected) and rejected.reason == "duplicate key" and "user_id" in rejected.error


def test_the_same_key_in_sibling_objects_is_not_a_duplicate() -> None:
    value = encode({**SEARCH, "extra": [{"a": 1}, {"a": 2}, {"b": {"a": 3}}], "A": 0, "a": 0})
    assert isinstance(dec("search", value), Event)


def test_deep_nesting_is_rejected_not_raised() -> None:
    for depth in (500, 1000, 5000):
        value = encode(SEARCH)[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
        check_outcome(dec("search", value))


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
        ("search", with_("search", ts=0), "event time too old"),
        ("search", with_("search", ts=MIN_EVENT_TS_MS - 1), "event time too old"),
        ("search", with_("search", ts=TS_2026 // 1000), "event time too old"),  # epoch seconds, not milliseconds
        ("review", with_("review", ts="1999-12-31T23:59:59.999Z"), "event time too old"),
        ("search", with_("search", ts=NOW_MS + FUTURE_MS + 1), "event time in the future"),
        ("review", with_("review", ts="9999-12-31T23:59:59Z"), "event time in the future"),
        ("search", with_("search", ts=SCHEMA_MAX_MS), "event time in the future"),
        ("search", with_("search", ts=TS_2026 * 1000), "schema violation"),  # microseconds: past year 9999
        ("review", with_("review", text="好" * (HARD_TEXT + 1)), "text too long"),
        ("search", with_("search", query="q" * (HARD_TEXT + 1)), "text too long"),
        ("review", encode(REVIEW)[:-1] + b', "user_id": "u-2"}', "duplicate key"),
        ("review", encode({**REVIEW, "extra": {"a": [{"b": 1}]}}).replace(b'{"b": 1}', b'{"b": 1, "b": 1}'), "duplicate key"),
        ("search", encode(SEARCH)[:-1] + b', "user\\u005fid": "u-2"}', "duplicate key"),  # same key, escaped
        ("click", with_("search"), "unknown event type"),
        ("review", None, "empty record"),
    ],
)
def test_bad_records_are_rejected_with_the_right_reason(kind: str, value: bytes | None, reason: str) -> None:
    result = dec(kind, value)
    assert isinstance(result, Rejected), result
    assert result.reason == reason
    assert result.error  # the detail that goes to the dead-letter topic


def test_schema_violation_names_the_field() -> None:
    result = dec("review", with_("review", rating=9))
    assert isinstance(result, Rejected) and "rating" in result.error


def test_naive_timestamp_error_says_so() -> None:
    result = dec("review", with_("review", ts="2026-01-01T00:00:00"))
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
accepted_ms = st.integers(min_value=MIN_EVENT_TS_MS, max_value=NOW_MS + FUTURE_MS)  # what decode lets through
zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def rfc3339(draw: st.DrawFn, ms_range: st.SearchStrategy[int] = accepted_ms) -> str:
    """A zoned RFC 3339 text for an instant drawn from ``ms_range``, in any offset, Z or not."""
    ms = draw(ms_range)
    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    text = dt.astimezone(draw(zones)).isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds"])))
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


# short on purpose: generation cost dominates the fuzz tests; the length limits have explicit tests above
ids = st.text(min_size=1, max_size=12)
texts = st.text(max_size=30)


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(text_kinds)
    obj: dict[str, Any] = {"event_id": draw(ids), "user_id": draw(ids), "ts": draw(accepted_ms | rfc3339())}
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
    event = dec(kind, encode(obj))
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
    check_outcome(dec(kind, value))


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
    result = dec(kind, encode(value))
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
    result = dec(kind, encode(mutated))
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
    event = dec("search", with_("search", ts=ms), now_ms=SCHEMA_MAX_MS)  # a clock at the end of time
    assert isinstance(event, Event) and event.ts_ms == ms
    assert parse_ts(format_ts(event.ts_ms)) == ms


def test_accepted_event_time_can_always_be_formatted() -> None:
    result = dec("search", with_("search", ts="9999-12-31T23:00:00-05:00"), now_ms=SCHEMA_MAX_MS)
    check_outcome(result)
    if isinstance(result, Event):
        format_ts(result.ts_ms)


# --- event-time bounds: any timestamp, from any clock -----------------------------------------

EVENT_TIME_REASONS = {"schema violation", "unparseable event time", "event time too old", "event time in the future"}
extreme_ms = st.integers(min_value=-(2**70), max_value=2**70) | st.integers(min_value=0, max_value=SCHEMA_MAX_MS)
clocks = st.integers(min_value=MIN_EVENT_TS_MS, max_value=SCHEMA_MAX_MS)


@settings(max_examples=1000, deadline=None)
@given(ts=extreme_ms | rfc3339(st.integers(min_value=0, max_value=SCHEMA_MAX_MS - 86_400_000)), now=clocks)
def test_any_event_time_is_accepted_exactly_within_the_bounds_or_rejected(ts: object, now: int) -> None:
    result = dec("search", with_("search", ts=ts), now_ms=now)
    try:
        ms = parse_ts(ts)
    except ValueError:
        ms = None
    if ms is not None and MIN_EVENT_TS_MS <= ms <= now + FUTURE_MS:
        assert isinstance(result, Event) and result.ts_ms == ms
    else:
        assert isinstance(result, Rejected) and result.reason in EVENT_TIME_REASONS, result
        if ms is not None:
            assert result.reason == ("event time too old" if ms < MIN_EVENT_TS_MS else "event time in the future")


# --- order amounts: exact from the JSON literal --------------------------------------------

ORDER: dict[str, Any] = {"event_id": "o-1", "user_id": "u-1", "ts": TS_2026, "order_id": "o-1", "amount": "129.90",
                         "currency": "CNY", "items": 1}


def order_with_amount(literal: str) -> bytes:
    """An order whose amount is the raw JSON ``literal`` (a number as written, not via a float)."""
    return encode({**ORDER, "amount": "@"}).replace(b'"@"', literal.encode())


@pytest.mark.parametrize(
    "literal, amount",
    [
        ("129.9", "129.90"), ("129", "129.00"), ("0.07", "0.07"), ("0.1", "0.10"), ("1e2", "100.00"),
        ("1.2999E2", "129.99"), ("1.500", "1.50"), ("0", "0.00"), ("-0.0", "0.00"), ("999999999999.99", "999999999999.99"),
        ('"129.90"', "129.90"), ('"5"', "5.00"), ('"0.5"', "0.50"),
    ],
)
def test_order_amounts_as_numbers_or_text_are_exact(literal: str, amount: str) -> None:
    event = dec("order", order_with_amount(literal))
    assert isinstance(event, Event), event
    assert event.fields["amount"] == amount


@pytest.mark.parametrize(
    "literal, reason",
    [
        ("1.005", "schema violation"), ("0.001", "schema violation"), ("1.0000000000000000000000000001", "schema violation"),
        ("-1", "schema violation"), ("-0.01", "schema violation"), ("1e13", "schema violation"),
        ("1000000000000", "schema violation"), ("123456789012345678901234567890", "schema violation"),
        ("1e400", "not valid JSON"), ("NaN", "not valid JSON"), ("Infinity", "not valid JSON"), ("true", "schema violation"),
        ('"1.005"', "schema violation"), ('"-5"', "schema violation"), ('"1e2"', "schema violation"), ("null", "schema violation"),
    ],
)
def test_bad_order_amounts_are_rejected(literal: str, reason: str) -> None:
    result = dec("order", order_with_amount(literal))
    assert isinstance(result, Rejected) and result.reason == reason, result


@st.composite
def amount_literals(draw: st.DrawFn) -> tuple[str, Decimal]:
    """A JSON number literal for a valid amount in one of its many spellings, and its exact value."""
    cents = draw(st.integers(min_value=0, max_value=99_999_999_999_999))
    value = Decimal(cents).scaleb(-2)
    style = draw(st.sampled_from(["plain", "trailing zeros", "exponent", "integer"]))
    if style == "integer":
        value = Decimal(cents // 100)
        return str(cents // 100), value
    if style == "trailing zeros":
        return f"{value:f}" + "0" * draw(st.integers(min_value=1, max_value=30)), value
    if style == "exponent":
        shift = draw(st.integers(min_value=-5, max_value=5))
        return f"{value.scaleb(-shift):f}e{shift}", value
    return f"{value:f}", value


@settings(max_examples=500, deadline=None)
@given(literal=amount_literals())
def test_generated_amount_literals_are_read_exactly(literal: tuple[str, Decimal]) -> None:
    text, value = literal
    event = dec("order", order_with_amount(text))
    assert isinstance(event, Event), (text, event)
    assert Decimal(event.fields["amount"]) == value and event.fields["amount"] == f"{value.quantize(Decimal('0.01')):f}"


@settings(max_examples=300, deadline=None)
@given(cents=st.integers(min_value=0, max_value=99_999_999_999), extra=st.integers(min_value=1, max_value=9),
       places=st.integers(min_value=3, max_value=30))
def test_amounts_with_more_than_two_decimals_are_rejected(cents: int, extra: int, places: int) -> None:
    literal = f"{Decimal(cents).scaleb(-2):f}" + "0" * (places - 3) + str(extra)
    result = dec("order", order_with_amount(literal))
    assert isinstance(result, Rejected) and result.reason == "schema violation" and "decimal places" in result.error


# --- duplicate keys at any depth -----------------------------------------------------------

keys = st.text(alphabet="abcuser_id", min_size=1, max_size=4)
pairs_tree = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3) | st.lists(st.tuples(keys, children), max_size=3).map(tuple),
    max_leaves=8,
)


def raw_json(node: Any) -> str:
    """JSON text for a tree whose objects are tuples of (key, value) pairs, so keys may repeat."""
    if isinstance(node, tuple):
        return "{" + ", ".join(f"{json.dumps(k)}: {raw_json(v)}" for k, v in node) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(raw_json(v) for v in node) + "]"
    return json.dumps(node)


def has_duplicate(node: Any) -> bool:
    if isinstance(node, tuple):
        names = [k for k, _ in node]
        return len(set(names)) < len(names) or any(has_duplicate(v) for _, v in node)
    if isinstance(node, list):
        return any(has_duplicate(v) for v in node)
    return False


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=all_kinds, extra=pairs_tree, template=templates)
def test_duplicate_keys_are_rejected_at_any_depth(kind: str, extra: Any, template: tuple[str, dict[str, Any]]) -> None:
    value = encode(template[1])[:-1] + b', "extra": ' + raw_json(extra).encode() + b"}"
    result = dec(kind, value)
    check_outcome(result)
    assert (isinstance(result, Rejected) and result.reason == "duplicate key") == has_duplicate(extra)


# --- huge texts ----------------------------------------------------------------------------

NO_SECRETS = "好评质量不错很快递包装 abcXYZ，。!?😀\u200b"  # no digits or numerals: a repeated unit cannot form an ID


@settings(max_examples=200, deadline=None)
@given(kind=text_kinds, unit=st.text(alphabet=NO_SECRETS, min_size=1, max_size=4),
       length=st.integers(min_value=0, max_value=3 * HARD_TEXT))
def test_texts_of_any_length_are_cut_or_rejected_never_lost(kind: str, unit: str, length: int) -> None:
    """Lengths only: the units cannot spell personal data, so masking leaves the text as it is."""
    text = (unit * length)[:length]
    result = dec(kind, with_(kind, **{KINDS[kind][1]: text}))
    if len(text) > HARD_TEXT:
        assert isinstance(result, Rejected) and result.reason == "text too long"
        return
    assert isinstance(result, Event)
    assert result.text == text[:MAX_TEXT] and result.text_cut == max(0, len(text) - MAX_TEXT)


# --- every reason the code can give is in the dead-letter schema ----------------------------

STREAM_SOURCES = sorted(Path(__file__).resolve().parents[2].joinpath("stream").rglob("*.py"))


def test_the_reason_enum_is_the_dead_letter_schema_enum() -> None:
    assert {str(r) for r in Reason} == DEAD_LETTER_REASONS
    assert len(DEAD_LETTER_REASONS) == len(schema("dead-letter.schema.json")["properties"]["reason"]["enum"])


def test_every_reason_written_in_the_code_is_in_the_schema() -> None:
    """Reasons written as literals (Rejected("..."), DeadLetter(x, "..."), reason="...") or as Reason members."""
    literal = re.compile(r'(?:Rejected\(\s*|DeadLetter\([^,()]+,\s*|reason\s*=\s*)"([^"]+)"')
    member = re.compile(r"\bReason\.([A-Z_]+)\b")
    found: set[str] = set()
    for path in STREAM_SOURCES:
        source = path.read_text(encoding="utf-8")
        found |= set(literal.findall(source))
        for name in member.findall(source):
            assert name in Reason.__members__, f"{path}: Reason.{name}"
            found.add(Reason[name].value)
    assert found, "no reasons found: the search patterns are stale"
    assert found <= DEAD_LETTER_REASONS, found - DEAD_LETTER_REASONS
    assert {"personal data in user_id", "unsupported currency", "duplicate key"} <= found


def test_integers_of_any_size_are_kept_exact() -> None:
    event = dec("review", with_("review", extra=[-(2**63) - 1, 2**70]))
    assert isinstance(event, Event) and event.fields["extra"] == [-(2**63) - 1, 2**70]


@pytest.mark.parametrize("secret", ["13812345678", "138 1234 5678", "zhang.san@example.com", "110101199003074514"])
@pytest.mark.parametrize("at", range(480, 500))
def test_cutting_a_long_text_never_leaves_a_fragment_of_personal_data(secret: str, at: int) -> None:
    """The cut for the encoder happens after masking: a cut through a phone would leave digits no one can mask."""
    text = "好" * at + secret + "很好" * 20
    body = {"event_id": "e", "user_id": "u", "ts": NOW_FOR_CUT, "item_id": "i", "text": text}
    event = decode("review", json.dumps(body, ensure_ascii=False).encode(), now_ms=NOW_FOR_CUT,
                   limits=Limits(max_text_chars=500, reject_text_chars=100_000, max_future_ms=300_000))
    assert not isinstance(event, Rejected)
    def shadow(s: str) -> str:
        return "".join(ch for ch in s if ch.isascii() and ch.isalnum())

    kept, sought = shadow(event.text), shadow(secret)
    assert not any(sought[k : k + 5] in kept for k in range(len(sought) - 4)), (at, event.text[-30:])


NOW_FOR_CUT = 1_767_225_600_000


@pytest.mark.parametrize("keep", range(5, 13))
def test_a_cut_through_a_masked_placeholder_leaves_no_fragment(keep: int) -> None:
    """Masking runs before the cut; a cut inside "[PHONE]" must not leave "[PHON" to become a keyword."""
    limits = Limits(max_text_chars=keep, reject_text_chars=1000, max_future_ms=300_000)
    value = json.dumps({"event_id": "e", "user_id": "u", "ts": 1_767_225_600_000, "item_id": "i",
                        "text": "好评好评好13812345678 后面"}, ensure_ascii=False).encode()
    result = decode("review", value, now_ms=1_767_225_600_000, limits=limits)
    assert isinstance(result, Event)
    assert "[" not in result.text or result.text.endswith("[PHONE]"), result.text
    assert "138" not in result.text


# --- RFC 3339 exactly ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected_ms",
    [
        ("2026-01-01t00:00:00z", TS_2026),  # RFC 3339 5.6: T and Z may be lower case
        ("2026-01-01 08:00:00+08:00", TS_2026),  # and a space may stand for the T
        ("2026-01-01T00:00:00.123456789Z", TS_2026 + 123),  # any fraction, read to the millisecond
        ("2025-12-31T23:59:60Z", TS_2026 - 1),  # a leap second: the last millisecond of :59
        ("2026-01-01T07:59:60.5+08:00", TS_2026 - 1),
        ("2026-01-01 08:00:00+08", TS_2026),  # PostgreSQL's timestamptz text
        ("2026-01-01T08:00:00+0800", TS_2026),
    ],
)
def test_every_rfc3339_form_is_read(text: str, expected_ms: int) -> None:
    assert parse_ts(text) == expected_ms


@pytest.mark.parametrize(
    "text",
    ["2026-W01-4T00:00:00Z", "20260101T000000Z", "2026-01-01T08:00:60Z", "2026-01-01T00:00:00+00:60",
     "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00,5Z", "2026-01-01T00:00:00+00:00:30", "2026-01-01T00:00Z", "2026-01-01",
     "2026-01-01T24:00:00Z", "2026-02-30T00:00:00Z", "２０２６-01-01T00:00:00Z", "2026-01-01T00:00:00Z\n"],
)
def test_other_iso_8601_forms_are_refused_with_a_reason(text: str) -> None:
    result = dec("review", with_("review", ts=text))
    assert isinstance(result, Rejected) and result.reason == Reason.BAD_TIME


@settings(max_examples=300, deadline=None)
@given(rfc3339(), st.sampled_from(["T", "t", " "]), st.booleans(), st.integers(min_value=0, max_value=9))
def test_rfc3339_variants_read_as_the_same_instant(text: str, sep: str, lower: bool, extra_digits: int) -> None:
    expected = parse_ts(text)
    variant = text.replace("T", sep)
    if "." in variant:  # more fraction digits never change the millisecond
        variant = re.sub(r"(\.\d{3})", lambda m: m[1] + "7" * extra_digits, variant)
    if lower:
        variant = variant.replace("Z", "z")
    assert parse_ts(variant) == expected


def test_a_bad_time_error_never_echoes_the_value() -> None:
    for ts in ["138\xa01234\xa05678", "13812345678", "1381234567８Z"]:
        result = dec("review", with_("review", ts=ts))
        assert isinstance(result, Rejected) and "1234" not in result.error and "８" not in result.error
