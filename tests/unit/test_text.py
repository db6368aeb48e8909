"""Tests for stream.core.text: PII never reaches the encoder, keywords stay meaningful, nothing raises."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.text import (
    PLACEHOLDERS,
    CleanText,
    clean,
    clean_many,
    mask_pii,
    normalize,
    stopwords,
)

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def with_id_check(body17: str) -> str:
    """GB 11643 check character."""
    return body17 + ID_CHECK[sum(int(d) * w for d, w in zip(body17, ID_WEIGHTS)) % 11]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def with_luhn(prefix: str) -> str:
    return next(prefix + d for d in "0123456789" if luhn_ok(prefix + d))


def fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def digits_only(s: str) -> str:
    return re.sub(r"[^0-9]", "", s)


def assert_masked(raw: str, kind: str, secret: str) -> CleanText:
    result = clean(raw)
    assert PLACEHOLDERS[kind] in result.text
    assert kind in result.pii
    assert secret not in result.text
    assert secret not in digits_only(result.text)
    assert not any(secret in t for t in result.tokens)
    return result


@pytest.mark.parametrize(
    "raw",
    [
        "我的电话13800138000请联系",
        "电话+86 138 0013 8000谢谢",
        "电话：+86-138-0013-8000。",
        "0086 13800138000",
        "联系8613800138000",
        "手机号：１３８００１３８０００，谢谢",
        "打138-0013-8000或者138 0013 8000都行",
        "call me at 13800138000!",
    ],
)
def test_mobile_numbers_are_masked(raw: str) -> None:
    assert_masked(raw, "phone", "13800138000")


def test_landline_is_masked() -> None:
    result = assert_masked("座机010-12345678，分机0571-88888888", "phone", "12345678")
    assert "88888888" not in result.text


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("联系我zhang.san+shop@example.com.cn谢谢", "zhang.san+shop@example.com.cn"),
        ("Email me at john_doe@163.com!", "john_doe@163.com"),
        ("邮箱：ＡＢＣ＠ｑｑ．ｃｏｍ", "ABC@qq.com"),
    ],
)
def test_emails_are_masked(raw: str, secret: str) -> None:
    result = clean(raw)
    assert "[EMAIL]" in result.text and result.pii == ("email",)
    assert secret.lower() not in result.text.lower()
    assert "@" not in result.text
    assert not {"zhang", "san", "shop", "john_doe", "abc", "qq", "163"} & set(result.tokens)


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("身份证11010519491231002X请核对", "11010519491231002"),
        ("身份证号 11010519491231002x", "11010519491231002"),
        (f"证件号{with_id_check('44030120051231123')}，已上传", "44030120051231123"),
        ("老身份证110105491231002还能用吗", "110105491231002"),
        (f"ID：{fullwidth(with_id_check('32010219880808456'))}", "32010219880808456"),
    ],
)
def test_id_numbers_are_masked(raw: str, secret: str) -> None:
    assert_masked(raw, "id_number", secret)


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        with_luhn("622202123456789012"),
        fullwidth(with_luhn("621226120200123456")),
    ],
)
def test_bank_cards_are_masked(card: str) -> None:
    digits = digits_only(unicodedata.normalize("NFKC", card))
    result = assert_masked(f"退款打到卡号{card}就行", "bank_card", digits)
    assert digits[:8] not in digits_only(result.text)


def test_grouped_card_followed_by_a_short_number() -> None:
    result = clean("卡号4111 1111 1111 1111 5元")
    assert result.text == "卡号[CARD] 5元"


@pytest.mark.parametrize(
    "raw",
    [
        "寄到北京市朝阳区建国路88号3栋2单元1201室谢谢",
        "地址南京西路1266号",
        "送到南锣鼓巷胡同5号院",
    ],
)
def test_street_addresses_are_masked(raw: str) -> None:
    result = clean(raw)
    assert "[ADDRESS]" in result.text and result.pii == ("address",)
    assert not re.search(r"[0-9]+号", result.text)


def test_pii_kinds_are_reported_once_in_masking_order() -> None:
    text, kinds = mask_pii("a@b.cn 13800138000 c@d.cn 13900139000")
    assert text == "[EMAIL] [PHONE] [EMAIL] [PHONE]"
    assert kinds == ("email", "phone")


@pytest.mark.parametrize(
    "raw",
    [
        "价格129.9元，很划算",
        "订单号20241128000123已发货",
        "2024-11-28到货",
        "编号123456789012",
        "流水号1234567812345678",
        "订单202411281380013800099",
        "不知道3号能不能到",
        "买了3件，共99元",
    ],
)
def test_ordinary_numbers_are_kept(raw: str) -> None:
    result = clean(raw)
    assert result.pii == ()
    assert result.text == normalize(raw)


def test_sixteen_digit_number_failing_luhn_is_not_a_card() -> None:
    assert not luhn_ok("1234567812345678")
    assert "[CARD]" not in clean("单号1234567812345678").text


def test_stopwords_removed_and_content_words_kept() -> None:
    tokens = clean("这个手机的电池非常耐用").tokens
    assert {"手机", "电池", "耐用"} <= set(tokens)
    assert not {"这个", "的", "非常"} & set(tokens)


def test_stopword_list_excludes_interest_and_sentiment_words() -> None:
    words = stopwords()
    assert len(words) >= 400
    assert {"的", "了", "是", "就是", "the", "and"} <= words
    assert not {"好", "差", "喜欢", "质量", "价格", "物流", "手机", "不错"} & words


def test_tokens_drop_numbers_symbols_single_letters_and_lowercase_latin() -> None:
    tokens = clean("iPhone 15 Pro 的 A 芯片 129.9 😀 !!! 2024-11-28").tokens
    assert tokens == ("iphone", "pro", "芯片")


def test_placeholders_never_become_tokens() -> None:
    result = clean("电话13800138000 邮箱a@b.cn 卡4111111111111111 身份证11010519491231002X [PHONE]")
    assert result.tokens == ("电话", "邮箱", "卡", "身份证")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("★◆■→好评", "好评"),
        ("┌─┐│盒子│└─┘", "盒子"),
        ("私用\ue000区", "私用 区"),
        ("太好用了😀👍", "太好用了😀👍"),
        ("😀😀😀😀😀😀", "😀😀😀"),
        ("好!!!!!!", "好!!!"),
        ("好！！！！", "好!!!"),
        ("哈哈哈哈哈", "哈哈哈哈哈"),
        ("這個產品質量很好", "這個產品質量很好"),
        ("好\x00用\x07了", "好用了"),
        ("第一行\n第二行\t结束\r\n", "第一行 第二行 结束"),
        ("好\u200b用\ufeff", "好用"),
        ("ＡＢＣ１２３", "ABC123"),
        ("\ud800好\udfff", "好"),
        ("  多   空格  ", "多 空格"),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "😀🎉", "Nice手机とても良い한국어", "a" * 10_000, "好" * 10_000, "1" * 10_000, "x@" * 5_000]
)
def test_edge_inputs_do_not_raise(raw: str) -> None:
    result = clean(raw)
    assert isinstance(result.text, str) and isinstance(result.tokens, tuple)


def test_emoji_only_text_keeps_emoji_but_has_no_tokens() -> None:
    assert clean("😀🎉").text == "😀🎉"
    assert clean("😀🎉").tokens == ()


def test_clean_text_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        clean("好").text = "x"  # type: ignore[misc]


def test_clean_many_preserves_order_and_length() -> None:
    texts = ["默认好评", "电池耐用", "默认好评", ""]
    assert clean_many(texts) == [clean(t) for t in texts]
    assert clean_many([]) == []


def assert_clean_invariants(result: CleanText) -> None:
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co"} for c in result.text)
    assert result.text == result.text.strip() and "  " not in result.text
    assert all(t and t == t.strip() and t not in stopwords() for t in result.tokens)
    assert set(result.pii) <= set(PLACEHOLDERS)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_clean_never_raises_and_is_idempotent(raw: str) -> None:
    result = clean(raw)
    assert_clean_invariants(result)
    assert clean(result.text).text == result.text


cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
filler = st.text(alphabet=st.one_of(cjk, st.sampled_from("，。！？、 ")), min_size=1, max_size=12)
mobile = st.builds(
    lambda prefix, second, rest, style: prefix
    + {
        "plain": f"1{second}{rest}",
        "space": f"1{second}{rest[0]} {rest[1:5]} {rest[5:]}",
        "hyphen": f"1{second}{rest[0]}-{rest[1:5]}-{rest[5:]}",
    }[style],
    st.sampled_from(["", "+86", "+86 ", "+86-", "86", "0086 "]),
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    st.sampled_from(["plain", "space", "hyphen"]),
)
email = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
)
id_number = st.builds(
    lambda area, born, seq: with_id_check(f"{area}{born:%Y%m%d}{seq:03d}"),
    st.integers(100000, 999999),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(0, 999),
)
pii_value = st.one_of(
    mobile,
    email,
    id_number,
    id_number.map(str.lower),
    mobile.map(fullwidth),
    id_number.map(fullwidth),
)


@settings(max_examples=300, deadline=None)
@given(filler, st.lists(st.tuples(pii_value, filler), min_size=1, max_size=4))
def test_embedded_pii_never_survives(head: str, parts: list[tuple[str, str]]) -> None:
    raw = head + "".join(value + tail for value, tail in parts)
    result = clean(raw)
    assert_clean_invariants(result)
    text_digits = digits_only(result.text)
    for value, _ in parts:
        plain = unicodedata.normalize("NFKC", value)
        assert plain not in result.text
        assert "@" not in result.text
        core = digits_only(plain)[-11:] if "@" not in plain else plain
        assert core not in text_digits and core not in result.text
        assert not any(core in t for t in result.tokens)
    assert clean(result.text).text == result.text
