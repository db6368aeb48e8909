"""Masking of decoded values: escaped JSON, keys, numbers, oversized values, dead-letter keys."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.messages import dead_letter
from stream.core.pii import alnum_of, digits_of
from stream.core.privacy import pseudonym
from stream.core.redact import (
    TEXT_LIMIT,
    TRUNCATION_MARK,
    mask_head,
    mask_tree,
    redact_bytes,
    redact_key,
    unescape,
)

PHONE = "13812345678"
FULLWIDTH_PHONE = "１３８１２３４５６７８"


def test_json_escaped_by_a_producer_is_decoded_before_masking() -> None:
    raw = json.dumps(
        {"user_id": "u1", "text": f"电话{PHONE}，邮箱 zhangsan(at)qq(dot)com"}
    ).encode()  # ensure_ascii
    assert b"\\u" in raw
    result = redact_bytes(raw)
    assert PHONE not in digits_of(result.value) and "zhangsan" not in alnum_of(
        result.value
    )
    assert json.loads(result.value)["text"] == "电话[PHONE]，邮箱 [EMAIL]"
    assert result.kinds == ("email", "phone") and not result.truncated


def test_keys_numbers_and_nested_values_are_masked() -> None:
    raw = json.dumps(
        {
            PHONE: {"qq_number": 13912345678, "items": [{"note": "vx: zhang_san88"}]},
            "ok": True,
        }
    ).encode()
    value = json.loads(redact_bytes(raw).value)
    assert value == {
        "[PHONE]": {"qq_number": "[PHONE]", "items": [{"note": "vx: [WECHAT]"}]},
        "ok": True,
    }


def test_invalid_json_is_unescaped_and_masked_as_text() -> None:
    raw = b'{"text": "\\u7535\\u8bdd' + PHONE.encode() + b' \\ud83d\\ude00", broken'
    result = redact_bytes(raw)
    assert result.value == '{"text": "电话[PHONE] 😀", broken'
    assert unescape("\\u0031\\u0033\\u0038") == "138"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"user_id": "138/1234/5678", "ts": "x"}',
        b'{"event_id": "138,1234,5678", "user_id": "u1"',
        b'{"category": "\\u7535\\u8bdd138:1234:5678"}',
        b'{"user_id": "u138a1234b5678"}',
    ],
)
def test_dead_letters_read_values_strictly(raw: bytes) -> None:
    """A dead letter is read by people: digits split by , / : or letters still make the number, masked."""
    result = redact_bytes(raw)
    assert PHONE not in digits_of(result.value) and "phone" in result.kinds


@pytest.mark.parametrize(
    "value", ["一三八,一二三四,五六七八", "u一三八a一二三四b五六七八", "壹叁捌:壹贰叁肆:伍陆柒捌", "🄂🄄🄉🄂🄃🄄🄅🄆🄇🄈🄉"]
)
def test_dead_letters_read_chinese_numerals_and_digit_glyphs_as_digits(value: str) -> None:
    """Strict reading takes every Chinese numeral as a digit, whatever punctuation or letters split them."""
    result = redact_bytes(json.dumps({"user_id": value, "ts": "x"}, ensure_ascii=False).encode())
    assert PHONE not in digits_of(result.value) and "phone" in result.kinds, result.value


def test_oversized_fullwidth_text_is_capped_masked_and_marked() -> None:
    raw = json.dumps(
        {"text": (FULLWIDTH_PHONE + " 好评 ") * 50_000}, ensure_ascii=False
    ).encode()
    assert len(raw) > 1_000_000
    result = redact_bytes(raw)
    assert result.truncated and result.value.endswith(TRUNCATION_MARK)
    assert len(result.value) <= TEXT_LIMIT + len(TRUNCATION_MARK)
    assert PHONE not in digits_of(result.value)
    assert "phone" in result.kinds


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 200),
    st.sampled_from(
        [PHONE, FULLWIDTH_PHONE, "138 1234 5678", "一三八一二三四五六七八"]
    ),
)
def test_a_secret_cut_by_the_cap_is_dropped_not_half_shown(
    shift: int, phone: str
) -> None:
    limit = 100
    text = "好" * (limit - shift) + phone + "好" * 600
    result = mask_head(text, limit)
    assert len(result.value) <= limit
    assert digits_of(result.value) == "", result.value


def test_strings_past_the_budget_are_emptied() -> None:
    result = mask_tree({"a": "x" * 30, "b": "y" * 30}, limit=40)
    assert result.truncated
    assert sum(len(k) + len(v) for k, v in result.value.items()) <= 40


def test_dead_letter_keys_are_pseudonyms_or_nothing() -> None:
    assert redact_key(PHONE.encode(), None) is None
    assert redact_key(PHONE.encode(), b"k") == pseudonym(PHONE, b"k")
    assert redact_key(None, b"k") is None


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=2_000)
    | st.text(max_size=500).map(lambda t: json.dumps({"t": t}).encode())
)
def test_redaction_never_raises_and_respects_the_cap(raw: bytes) -> None:
    result = redact_bytes(raw, limit=300)
    assert len(result.value) <= 300 + len(TRUNCATION_MARK)
    assert (
        redact_bytes(result.value.encode(), limit=300).kinds == () or result.truncated
    )


@pytest.mark.parametrize("raw", [
    b'{"event_id":"e","user_id":"u","ts":1,"text":"\\ud800"}',
    b'{"text":"\\udc00\\ud83d"',
    b'"\\ud800" not json',
])
def test_a_dead_letter_with_lone_surrogate_escapes_always_serialises(raw: bytes) -> None:
    """Faust's JSON codec (orjson) refuses lone surrogates; one such record must not stop the worker."""
    letter = dead_letter(topic="reviews", partition=0, offset=1, key=None, value=raw, reason="not valid JSON",
                         error="bad \ud800 input", failed_at_ms=0)
    assert orjson.loads(orjson.dumps(letter))["reason"] == "not valid JSON"
