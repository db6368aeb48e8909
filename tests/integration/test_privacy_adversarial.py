"""Adversarial privacy end to end: personal data written the way evasive users and producers write it.

Every obfuscated form of the shipped PII corpus, JSON escaped by the producer (``ensure_ascii``),
full-width digits in a text too long to process, personal data in Kafka keys, user ids,
attributes and unknown fields, invalid JSON and broken UTF-8 go through a running worker.
Then every topic the service writes (inputs excluded), the changelogs, the dead letters, the
worker's data files and its log are scanned with normalised matching (JSON escapes decoded,
NFKC, case-folded, Chinese numerals as digits, separators ignored): no secret is found.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from stream.config import Settings
from stream.core.pii import alnum_of, digits_of, numbers_in
from stream.core.privacy import pseudonym
from stream.core.redact import TEXT_LIMIT, TRUNCATION_MARK, unescape
from stream.devtools.feed import FeedEvent, demo_feed
from stream.devtools.privacy_report import load_corpus
from stream.devtools.produce import produce_feed
from stream.devtools.worker_process import WorkerProcess
from stream.kafka.clients import make_producer, read_topic
from stream.kafka.topics import ensure_topics

from .test_end_to_end import expected_counts
from .worker_process import wait_for_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "adversarial-pseudonym-key"
TS = "2026-01-02T10:00:00Z"
FULLWIDTH_PHONE = "１３９８７６５４３２１"


def corpus_positives() -> list[tuple[str, list[str]]]:
    return [(c.text, list(c.secrets)) for c in load_corpus() if c.kinds]


def seeded(
    users: int = 12,
) -> tuple[list[FeedEvent], list[tuple[str, bytes, bytes]], list[str]]:
    """Valid events (as FeedEvents, for expected counts), raw records to produce, and the secrets."""
    valid = list(demo_feed(users, 200, seed=11))
    secrets: list[str] = []
    for i, (text, found) in enumerate(corpus_positives()):
        user = f"u{1 + i % users:04d}"
        valid.append(
            FeedEvent(
                "review",
                {
                    "event_id": f"c{i}",
                    "user_id": user,
                    "ts": TS,
                    "item_id": "sku-9",
                    "text": text,
                },
                None,
            )
        )
        secrets += found
    key_phone, email_id = "13612345678", "li.si.secret@example.com"
    valid.append(
        FeedEvent(
            "search",
            {
                "event_id": "s-email",
                "user_id": email_id,
                "ts": TS,
                "query": "联系 li.si.secret (at) example (dot) com",
            },
            None,
        )
    )
    valid.append(
        FeedEvent(
            "user_attributes",
            {
                "user_id": "u0001",
                "ts": TS,
                "region": "电话 一三七 一二三四 五六七八",
                "occupation": "vx: wang_wu_secret",
                "nickname": "QQ 88776655",
                "13512345678": "电话号码当作字段名",
            },
            None,
        )
    )
    # Identifiers and attributes whose digits, split by , / : make a phone number (read strictly).
    valid.append(
        FeedEvent(
            "user_attributes",
            {"event_id": "158,1111,2222", "user_id": "u0006", "ts": TS, "occupation": "159/8765/4321"},
            None,
        )
    )
    valid.append(
        FeedEvent(
            "review",
            {"event_id": "157:3333:4444", "user_id": "u0007", "ts": TS, "item_id": "sku-2", "text": "不错"},
            None,
        )
    )
    secrets += [
        key_phone,
        email_id,
        "13712345678",
        "wang_wu_secret",
        "88776655",
        "13512345678",
        "15811112222",
        "15987654321",
        "15733334444",
    ]
    raw: list[tuple[str, bytes, bytes]] = []
    for fe in valid:
        key = key_phone if fe.event.get("event_id") == "c0" else fe.event["user_id"]
        raw.append(
            (fe.kind, key.encode(), json.dumps(fe.event).encode())
        )  # ensure_ascii: every CJK char escaped
    oversized = {
        "event_id": "big",
        "user_id": "u0002",
        "ts": TS,
        "item_id": "sku-1",
        "text": f"好评{FULLWIDTH_PHONE} " * 20_000,
    }
    raw += [
        ("review", b"u0002", json.dumps(oversized, ensure_ascii=False).encode()),
        (
            "review",
            b"u0003",
            b'{"event_id": "bad", "user_id": "u0003", "text": "\\u7535\\u8bdd13412345678 \\u5fae\\u4fe1 zhao_liu_secret"',
        ),
        (
            "review",
            b"13312345678",
            b'{"user_id": "u0004", "text": "\xff\xfe 13212345678 zhou.ba.secret@qq.com"}',
        ),
        (
            "search",
            b"u0005",
            json.dumps(
                {
                    "event_id": "noquery",
                    "user_id": "u0005",
                    "ts": TS,
                    "q": "身份证 110105 19491231 002X",
                }
            ).encode(),
        ),
        (  # no time: a dead letter, whose user id is masked although only slashes split it
            "user_attributes",
            b"u0008",
            json.dumps({"user_id": "137/2222/3333", "region": "电话 136,2222,4444"}).encode(),
        ),
    ]
    secrets += [
        FULLWIDTH_PHONE,
        "13412345678",
        "zhao_liu_secret",
        "13312345678",
        "13212345678",
        "zhou.ba.secret",
        "11010519491231002",
        "13722223333",
        "13622224444",
    ]
    return valid, raw, secrets


def produce_raw(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = make_producer(settings)
    for kind, key, value in records:
        producer.produce(settings.topic_of_kind[kind], key=key, value=value)
        producer.poll(0)
    assert producer.flush(60) == 0


def service_records(
    settings: Settings,
) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """Every record of every topic the service writes: outputs, internal topics and changelogs."""
    inputs = set(settings.kind_of_topic)
    topics = (
        AdminClient({"bootstrap.servers": settings.broker})
        .list_topics(timeout=10)
        .topics
    )
    ours = [
        t
        for t in topics
        if t not in inputs
        and (
            t.startswith(settings.app_id)
            or t
            in {
                settings.topic_profiles,
                settings.topic_alerts,
                settings.topic_updates,
                settings.topic_dead_letters,
            }
        )
    ]
    assert any(t.endswith("changelog") for t in ours), ours
    for topic in ours:
        for key, value in read_topic(settings, topic):
            yield topic, key, value


def readable(blob: bytes) -> str:
    """How a reader would see bytes: UTF-8 (lossy), JSON escapes decoded, NFKC, case-folded."""
    return unicodedata.normalize(
        "NFKC", unescape(blob.decode("utf-8", errors="replace"))
    ).casefold()


def scannable(secret: str) -> bool:
    """Long enough to be looked for without matching by chance: 7+ digits, or 6+ letters and digits
    (8+ when all of them could be hex, like the pseudonyms and hashes in every record). Shorter
    secrets are checked by the unit corpus instead."""
    digits, letters = digits_of(secret), alnum_of(secret)
    if len(digits) >= 7:
        return True
    return letters != digits and len(letters) >= (8 if re.fullmatch("[0-9a-f]+", letters) else 6)


def leaks(blob: bytes, secrets: list[str]) -> list[str]:
    """Secrets readable in ``blob``: numbers compared digit by digit (any script, any separators, and
    in the digits-only shadow of each short JSON string, where , / : split an id), other secrets by
    their letters and digits within each JSON string (within each word of binary files), so that
    width, case and separators do not hide them while unrelated fields do not join."""
    text = readable(blob)
    numbers = numbers_in(text)
    binary = b"\x00" in blob or "\ufffd" in text
    stretches = re.split(r"[^\w.+\-@]+" if binary else r"[\"\n]", text)
    views = {alnum_of(w) for w in stretches if w}
    if not binary:  # short: an id or attribute, not a vector whose digits would match anything by chance
        numbers += [digits_of(w) for w in stretches if len(w) <= 64]
    found = []
    for secret in filter(scannable, secrets):
        digits, letters = digits_of(secret), alnum_of(secret)
        if len(digits) >= 7 and any(digits in n for n in numbers):
            found.append(secret)
        elif letters != digits and any(letters in v for v in views):
            found.append(secret)
    return found


def test_no_obfuscated_personal_data_reaches_topics_changelogs_dead_letters_or_files(
    broker, settings_factory, tmp_path: Path
) -> None:
    settings = settings_factory(
        broker.bootstrap,
        pseudonym_key=KEY,
        reject_text_chars=50_000,
        max_text_chars=500,
    )
    ensure_topics(settings)
    valid, raw, secrets = seeded()
    expected = {
        pseudonym(u, KEY.encode()): c for u, c in expected_counts(valid).items()
    }
    worker = WorkerProcess(settings, tmp_path / "logs")
    worker.start()
    try:
        produce_raw(settings, raw)
        wait_for_counts(settings, expected, worker, timeout=300)
        produce_feed(
            settings, list(demo_feed(12, 40, seed=12))
        )  # more traffic so stage 1 flushes everything
        dead = []
        for _ in range(60):
            dead = [
                json.loads(v)
                for _, v in read_topic(settings, settings.topic_dead_letters)
                if v
            ]
            if len(dead) >= 4:
                break
            time.sleep(1.0)
        assert len(dead) >= 4, dead

        for letter in dead:
            assert letter["key"] is None or letter["key"].startswith("p_"), letter[
                "key"
            ]
            assert letter.get("value") is None
            assert len(letter["value_text"] or "") <= TEXT_LIMIT + len(TRUNCATION_MARK)
        big = [d for d in dead if d["reason"] == "text too long"]
        assert big and big[0]["truncated"] and "phone" in big[0]["pii_masked"]

        scanned_inputs = set()
        for kind in ("review", "search", "user_attributes"):
            for key, value in read_topic(settings, settings.topic_of_kind[kind]):
                scanned_inputs.update(leaks((key or b"") + b"\n" + (value or b""), secrets))
        visible = {s for s in secrets if scannable(s)}
        assert visible <= scanned_inputs, f"the scan must find the secrets where they are: {visible - scanned_inputs}"

        problems = {}
        for topic, key, value in service_records(settings):
            for blob in (key or b"", value or b""):
                if found := leaks(blob, secrets):
                    problems.setdefault(topic, []).extend(found)
        files = [
            p
            for p in [*settings.data_dir.rglob("*"), *(tmp_path / "logs").rglob("*")]
            if p.is_file()
        ]
        for path in files:
            if found := leaks(path.read_bytes(), secrets):
                problems.setdefault(str(path.relative_to(tmp_path)), []).extend(found)
        assert not problems, problems
    finally:
        worker.stop()
