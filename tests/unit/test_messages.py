"""Wire formats: one dispatch for the internal topic, updates that survive JSON, envelopes that meet their schemas."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.core.messages import (
    Kind,
    decode_interest_vector,
    encode_interest_vector,
    make_tick,
    make_update,
    pack_internal,
    parse_internal,
    unpack_internal,
    unpack_vector,
)

unit_components = st.lists(st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, width=32), max_size=512)


@given(unit_components)
def test_interest_vector_encodings_round_trip_through_json(values: list[float]) -> None:
    v = np.asarray(values, dtype=np.float64)
    half = decode_interest_vector(json.loads(json.dumps(encode_interest_vector(v, "float16-base64"))))
    assert half.shape == v.shape
    assert np.all(np.abs(half - v) <= np.abs(v) * 2.0**-11 + 2.0**-25)  # float16 rounding, subnormals included
    listed = decode_interest_vector(json.loads(json.dumps(encode_interest_vector(v, "json", digits=4))))
    assert np.all(np.abs(listed - v) <= 0.5e-4 + 1e-12)


def test_internal_messages_dispatch_by_kind() -> None:
    tick = parse_internal(json.loads(json.dumps(make_tick(42))))
    assert tick == {"kind": "tick", "watermark": 42}
    update = make_update(kind="order", user_id="u", event_id="e", ts_ms=1, source="orders/0", offset=3, watermark=0)
    assert parse_internal(json.loads(json.dumps(update))) == update
    with pytest.raises(ValueError):
        parse_internal({"kind": "gossip"})


def test_an_update_carries_its_embedding_exactly_through_json() -> None:
    v = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    u = json.loads(json.dumps(make_update(kind=Kind.SEARCH, user_id="u", event_id="e", ts_ms=1, source="s/0", offset=0,
                                          watermark=0, embedding=v, cluster=np.int64(3))))
    assert np.array_equal(unpack_vector(u["embedding"]), v) and u["cluster"] == 3 and u["kind"] == "search"


internal_messages = st.lists(
    st.one_of(
        st.builds(make_tick, st.integers(0, 2**53)),
        st.builds(
            lambda user, offset, text, v: make_update(
                kind="review", user_id=user, event_id=f"e{offset}", ts_ms=offset, source="reviews/0", offset=offset,
                watermark=0, data={"tokens": [text], "rating": 5}, embedding=np.asarray(v, dtype=np.float32)),
            st.text(min_size=1, max_size=20), st.integers(0, 2**40), st.text(max_size=300),
            st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=64),
        ),
    ),
    max_size=40,
)


@given(internal_messages, st.integers(min_value=2, max_value=4096))
def test_packs_keep_every_internal_message_in_order_within_the_size_limit(messages: list, max_bytes: int) -> None:
    values = pack_internal(messages, max_bytes=max_bytes)
    assert [m for v in values for m in unpack_internal(v)] == json.loads(json.dumps(messages))
    for v in values:
        assert len(v) <= max_bytes or len(unpack_internal(v)) == 1  # only a lone message may exceed the limit
    assert len(values) <= len(messages)


def test_a_lone_internal_message_from_an_older_worker_is_one_message() -> None:
    tick = make_tick(42)
    assert unpack_internal(json.dumps(tick).encode()) == [tick]


def test_an_unknown_event_kind_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        make_update(kind="gossip", user_id="u", event_id="e", ts_ms=1, source="s/0", offset=0, watermark=0)


def test_a_dead_letter_of_a_huge_record_still_fits_in_a_kafka_message() -> None:
    from stream.core.messages import dead_letter

    value = json.dumps({"text": "太长" * 400_000}).encode()  # ~4.8 MB: larger than any broker accepts by default
    message = dead_letter(topic="reviews", partition=0, offset=7, key=b"k", value=value, reason="text too long",
                          error="too long", failed_at_ms=0)
    assert len(json.dumps(message).encode()) < 256 * 1024
    assert message["truncated"] and message["value_text"].startswith('{"text":"太长太长')
    assert message["key"] is None and message["value_bytes"] == len(value)
    small = dead_letter(topic="reviews", partition=0, offset=8, key=b"u1", value=b"{}", reason="schema violation",
                        error="x", failed_at_ms=0, pseudonym_key=b"k")
    assert small["value_text"] == "{}" and not small["truncated"] and small["key"].startswith("p_")
