"""Personal data at the edge: pseudonymous ids, masked fields and dead letters, keywords of many users, watermark."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import Settings
from stream.core.clustering import OnlineClusterer
from stream.core.events import Limits
from stream.core.pii import alnum_of, digits_of, mask
from stream.core.privacy import contains_pii, pseudonym, scrub
from stream.core.text import clean
from stream.worker.pipeline import BatchProcessor, Record

from .test_pipeline import FakeEncoder

TOPICS = {"reviews": "review", "user-attributes": "user_attributes", "orders": "order"}
PHONE = "13812345678"


def processor(key: bytes | None = None) -> BatchProcessor:
    return BatchProcessor(
        FakeEncoder(),
        OnlineClusterer(k=2, warmup=2),
        kind_of_topic=TOPICS,
        prefixes={},
        limits=Limits(100, 1000, 300_000),
        pseudonym_key=key,
    )


def attrs(
    offset: int, user: str, ts: int = 1_767_225_600_000, **fields: object
) -> Record:
    value = json.dumps(
        {"user_id": user, "ts": ts, **fields}, ensure_ascii=False
    ).encode()
    return Record("user-attributes", 0, offset, user.encode(), value)


def test_pseudonyms_replace_user_ids_before_anything_leaves_stage_one() -> None:
    result = processor(b"k").process([attrs(0, "13812345678", region="浙江")])
    assert [u["user_id"] for u in result.updates] == [pseudonym("13812345678", b"k")]
    assert "13812345678" not in json.dumps(result.updates)


def test_a_user_id_that_is_personal_data_is_refused_without_a_key() -> None:
    result = processor().process([attrs(0, "zhang.san@example.com")])
    assert not result.updates
    [dead] = result.dead_letters
    assert dead.reason == "personal data in user_id"
    message = dead.message(0)
    assert "zhang.san" not in json.dumps(message, ensure_ascii=False)
    assert (
        message["key"] is None and "value" not in message
    )  # neither the raw key nor the raw bytes


def test_dead_letters_decode_escapes_mask_every_string_and_pseudonymise_the_key() -> (
    None
):
    value = json.dumps(
        {
            "user_id": "u1",
            "ts": "not a time",
            "text": "电话１３８ 1234 5678",
            PHONE: "vx: zhang_san88",
        }
    ).encode()
    assert (
        b"\\u" in value
    )  # a producer with json.dumps defaults escapes every CJK character
    [dead] = (
        processor(b"k")
        .process([Record("reviews", 0, 5, PHONE.encode(), value)])
        .dead_letters
    )
    message = dead.message(0)
    assert message["key"] == pseudonym(PHONE, b"k")
    assert PHONE not in digits_of(json.dumps(message)) and "zhangsan88" not in alnum_of(
        json.dumps(message)
    )
    assert set(message["pii_masked"]) == {"phone", "wechat"}
    assert json.loads(message["value_text"])["text"] == "电话[PHONE]"


def test_fields_outside_the_contract_are_dropped_and_contract_strings_masked() -> None:
    record = attrs(
        0,
        "u1",
        region="浙江",
        gender="f",
        occupation="QQ 88776655",
        nickname="QQ 88776655",
        extra={PHONE: ["邮箱 a (at) b (dot) com"]},
        deep=json.loads("[" * 900 + "]" * 900),  # deeper than masking could walk: never walked
    )
    event = processor().intake.decode(record, now_ms=1_767_225_600_000 + 1000)
    assert "nickname" not in event.fields and "extra" not in event.fields and "deep" not in event.fields
    assert event.fields["occupation"] is None  # a free-form attribute holding personal data is dropped
    assert event.fields["user_id"] == "u1" and event.fields["region"] == "浙江"


def test_tokens_of_masked_text_hold_no_fragment_of_the_secret() -> None:
    texts = [
        "邮箱 zhangsan (at) qq (dot) com 东西不错",
        "vx: lisi_1990 联系",
        "sunqi at sina dot com 好评",
        "wxid_k3j9x8m2p1 加我",
    ]
    for text in texts:
        tokens = " ".join(clean(text).tokens)
        assert not {
            "zhangsan",
            "lisi",
            "1990",
            "sunqi",
            "sina",
            "k3j9x8m2p1",
            "wxid",
        } & set(tokens.split()), tokens


def test_free_form_attributes_with_personal_data_are_dropped() -> None:
    [update] = (
        processor()
        .process([attrs(0, "u1", region="电话13812345678", occupation="教师")])
        .updates
    )
    assert update["data"] == {"occupation": "教师"}


def test_event_id_with_personal_data_becomes_the_record_position() -> None:
    [update] = (
        processor()
        .process([attrs(3, "u1", event_id="13812345678-1", gender="f")])
        .updates
    )
    assert update["event_id"] == "user-attributes/0/3"


def test_watermark_waits_for_every_owned_partition_and_releases_idle_ones() -> None:
    p = processor()
    day, t0 = (
        86_400_000,
        1_767_225_600_000,
    )  # event times from 2026: older ones are refused
    ends = {"user-attributes/0": 2, "user-attributes/1": 1}
    p.process([attrs(0, "u1", ts=t0 + 10 * day)], highwaters=ends, now=0.0)
    assert p.watermark == 0, "partition 1 has not spoken yet"
    p.process(
        [
            Record(
                "user-attributes",
                1,
                0,
                b"u",
                json.dumps({"user_id": "u2", "ts": t0 + 4 * day}).encode(),
            )
        ],
        highwaters=ends,
        now=1.0,
    )
    assert p.watermark == t0 + 4 * day - p.lateness_ms
    p.process(
        [attrs(1, "u1", ts=t0 + 20 * day)],
        highwaters={**ends, "user-attributes/1": 2},
        now=100.0,
    )
    assert p.watermark == t0 + 4 * day, (
        "partition 1 has an unread record: however long it waits, it is not idle"
    )
    p.process(
        [attrs(2, "u1", ts=t0 + 21 * day)],
        highwaters={"user-attributes/0": 3, "user-attributes/1": 1},
        now=200.0,
    )
    assert p.watermark == t0 + 21 * day, (
        "partition 1, read to its end and silent past idle_after, no longer holds it back"
    )


def test_settings_survive_the_trip_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Settings(
        windows_days=(7, 30), partitions=6, api_token="t"
    )
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def order(offset: int, **fields: object) -> Record:
    event = {"event_id": f"o{offset}", "user_id": "u1", "ts": 1_767_225_600_000, "order_id": "A1",
             "amount": "9.90", "currency": "CNY", "items": 1, **fields}
    return Record("orders", 0, offset, b"u1", json.dumps(event, ensure_ascii=False).encode())


@pytest.mark.parametrize("user_id", ["138/1234/5678", "138,1234,5678", "138:1234:5678", "u138a1234b5678",
                                     "110105/19491231/002X", "6222,0212,3456,7890,128",
                                     "11010519491231002", "11010519491231002Х", "11010519491231002*",
                                     "138ᅠ1234ᅠ5678", "138丨1234丨5678", "u" + "a" * 100 + "138a1234b5678"])
def test_a_user_id_whose_digits_make_a_phone_id_or_card_is_refused_and_masked_in_the_dead_letter(
    user_id: str,
) -> None:
    """Without a pseudonym key the id would become a profile key: refused, and the dead letter masks it."""
    result = processor().process([attrs(0, user_id, gender="f")])
    assert not result.updates
    [dead] = result.dead_letters
    assert dead.reason == "personal data in user_id"
    letter = json.dumps(dead.message(0), ensure_ascii=False)
    assert digits_of(user_id).rstrip("X")[:11] not in digits_of(letter)


def test_ids_and_attributes_read_strictly_become_positions_or_are_dropped() -> None:
    """An event id holding a phone becomes the record position; category, region and occupation holding
    one are dropped, whatever punctuation splits the number."""
    [attributes] = processor().process(
        [attrs(4, "u1", event_id="138,1234,5678", region="138/1234/5678", occupation="教师")]
    ).updates
    assert attributes["event_id"] == "user-attributes/0/4"
    assert attributes["data"] == {"occupation": "教师"}
    [purchase] = processor().process([order(7, category="电话138,1234,5678")]).updates
    assert purchase["data"]["category"] is None
    assert PHONE not in digits_of(json.dumps([attributes, purchase]))


def test_prose_keeps_comma_separated_numbers() -> None:
    """Only identifiers are read strictly: in a review, 13,800 and 1,234 stay separate numbers."""
    record = Record("reviews", 0, 1, b"u1", json.dumps(
        {"event_id": "r1", "user_id": "u1", "ts": 1_767_225_600_000, "item_id": "i", "rating": 5,
         "text": "卖了13,800台，退了1,234台"}, ensure_ascii=False).encode())
    event = processor().intake.decode(record, now_ms=1_767_225_600_000 + 1000)
    assert event.fields["text"] == "卖了13,800台，退了1,234台"


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from("3456789"),
    st.text("0123456789", min_size=9, max_size=9),
    st.sets(st.integers(1, 10), max_size=4),
    st.text(st.sampled_from(",/:;!?#$%^&*()[]<>、，。：；！？ -_.~|\\'\"`❤"), min_size=1, max_size=6),
    st.text(st.sampled_from("abcuxyz_"), max_size=3),
)
def test_an_identifier_whose_digits_make_a_mobile_is_personal_data(
    second: str, rest: str, cuts: set[int], sep: str, prefix: str
) -> None:
    number = "1" + second + rest
    parts = [number[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), 11])]
    value = prefix + sep.join(parts)
    assert contains_pii(value)
    assert scrub(value) is None
    assert number not in digits_of(mask(value, strict=True)[0])


@pytest.mark.parametrize("registered_at", ["2022-08-18T04:06:30.717Z", "2019-12-31T23:59:59Z", 1_576_000_000_000])
def test_validated_timestamps_and_amounts_are_not_read_as_personal_data(registered_at: object) -> None:
    """A timestamp's digits (20220818040630717) form an ID-number shape; it is a validated format, not text."""
    result = processor().process([attrs(0, "u1", registered_at=registered_at, age_band="25-34", gender="f")])
    [update] = result.updates
    assert update["data"]["registered_at"].startswith(("2022", "2019"))
