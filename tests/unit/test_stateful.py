"""Stage 1 and stage 2 together under any sequence of events: never raise, counts stay exact.

A hypothesis state machine produces records with extreme event times (the oldest and newest
accepted, years apart, refused ones just outside the bounds), long gaps, long and empty texts,
numeric and text amounts, redeliveries (duplicates) and forget requests; it runs them through
the real :class:`BatchProcessor` (with a fake encoder) and the real :class:`ProfileStage`
over dicts, routing updates and ticks the way the Faust shell does. After every step each
valid record is either applied exactly once or (a text before the warm start) still held,
each invalid one is a dead letter with a reason of the schema, a valid one never published
is a text a forget request erased, and every profile's counts equal the records applied to
it since its last forget (events at or before a forget request's time are erased).
"""

from __future__ import annotations

import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Set as AbstractSet
from typing import Any

import fastjsonschema
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from stream.core.clustering import OnlineClusterer
from stream.core.events import MIN_EVENT_TS_MS, Limits, schema
from stream.core.messages import make_tick
from stream.core.profile import DAY_MS, Rules, public_view
from stream.core.stage2 import ProfileStage
from stream.worker.pipeline import BatchProcessor, Record

from .test_pipeline import FakeEncoder

NOW = 1_798_761_600_000  # 2027-01-01T00:00:00Z: stage 1's wall clock
FUTURE_MS = 300_000
MAX_TEXT, HARD_TEXT = 50, 400
LIMITS = Limits(max_text_chars=MAX_TEXT, reject_text_chars=HARD_TEXT, max_future_ms=FUTURE_MS)
TOPICS = {"reviews": "review", "searches": "search", "orders": "order", "user-attributes": "user_attributes",
          "forget-requests": "forget"}
TOPIC_OF = {kind: topic for topic, kind in TOPICS.items()}
TEXT_FIELD = {"review": "text", "search": "query"}
USERS = ["u0", "u1", "u2"]
PARTITIONS = 2  # of the internal topic: stage 2 sees a user on one of them
RULES = Rules(half_life_ms=DAY_MS, inactivity_days=3)  # a 1-day half-life underflows over years of silence
PROFILE = fastjsonschema.compile(schema("profile.schema.json"), formats={"date-time": lambda _: True})
DEAD_REASONS = set(schema("dead-letter.schema.json")["properties"]["reason"]["enum"])

accepted_times = st.one_of(
    st.sampled_from([MIN_EVENT_TS_MS, MIN_EVENT_TS_MS + 1, NOW - 3 * 365 * DAY_MS, NOW - DAY_MS, NOW, NOW + FUTURE_MS]),
    st.integers(min_value=MIN_EVENT_TS_MS, max_value=NOW + FUTURE_MS),
)
refused_times = st.sampled_from([0, MIN_EVENT_TS_MS - 1, NOW + FUTURE_MS + 1, 253402300799999])
texts = st.one_of(st.text(max_size=8), st.integers(min_value=MAX_TEXT - 1, max_value=HARD_TEXT + 1).map(lambda n: "好" * n))
amounts = st.one_of(st.sampled_from(["0", "0.07", "129.9", "1e2", '"12.30"', '"5"']),
                    st.integers(min_value=0, max_value=10**6).map(str))


def stage2_partition(user: str) -> int:
    return zlib.crc32(user.encode()) % PARTITIONS


class Pipeline(RuleBasedStateMachine):
    """The model: which records exist, which must be accepted, and what stage 2 must hold."""

    @initialize()
    def start(self) -> None:
        self.stage1 = BatchProcessor(
            FakeEncoder(), OnlineClusterer(k=2, warmup=4, seed=0), kind_of_topic=TOPICS, prefixes={}, limits=LIMITS,
            lateness_ms=3_600_000, tick_every_ms=DAY_MS,
        )
        self.stage2 = ProfileStage({}, {}, RULES, clock_ms=lambda: NOW)
        self.records: list[Record] = []
        self.next_offset: Counter[str] = Counter()
        self.valid: dict[tuple[str, int], tuple[str, str]] = {}  # position -> (user, kind)
        self.invalid: set[tuple[str, int]] = set()
        self.delivered: set[tuple[str, int]] = set()  # positions whose update reached stage 2
        self.dead: set[tuple[str, int]] = set()
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)  # applied since the user's last forget
        self.applied: dict[str, dict[str, int]] = defaultdict(dict)
        self.forgotten_at: dict[str, int] = {}  # newest forget request stage 2 applied, per user
        self.forget_sent: dict[str, int] = {}  # newest forget request produced, per user
        self.times: dict[tuple[str, int], int] = {}  # position -> event time, for valid records
        self.held: AbstractSet[tuple[str, int]] = frozenset()
        self.unacked: set[tuple[str, int]] = set()  # what the shell keeps from acking: read, and not released since
        self.clock = 0.0

    def _record(self, kind: str, user: str, ts: int, partition: int, **fields: Any) -> tuple[Record, str]:
        topic = TOPIC_OF[kind]
        source = f"{topic}/{partition}"
        offset = self.next_offset[source]
        self.next_offset[source] += 1
        obj: dict[str, Any] = {"event_id": f"{kind}-{source}-{offset}", "user_id": user, "ts": ts, **fields}
        return Record(topic, partition, offset, user.encode(), json.dumps(obj, ensure_ascii=False).encode()), source

    def _run(self, records: list[Record], *, force_fit: bool = False) -> None:
        self.clock += 1.0
        result = self.stage1.process(records, force_fit=force_fit, highwaters={}, now=self.clock, wall_ms=NOW)
        self.held = result.held_positions
        self.unacked = ({*self.unacked, *((r.source, r.offset) for r in records)}) - set(result.released)
        for dead in result.dead_letters:
            assert dead.reason in DEAD_REASONS
            self.dead.add((dead.record.source, dead.record.offset))
        for update in result.updates:
            self._expect(update)
            self.stage2.handle(update, stage2_partition(update["user_id"]))
        for watermark in result.ticks:
            for partition in range(PARTITIONS):
                self.stage2.handle(make_tick(watermark), partition)

    def _expect(self, update: dict[str, Any]) -> None:
        """What stage 2 must do with ``update``: apply it once per source offset; a forget erases the user's
        events up to its time, whenever they arrive, and later ones start afresh."""
        user, source, offset, ts = update["user_id"], update["source"], update["offset"], update["ts"]
        self.delivered.add((source, offset))
        if offset <= self.applied[user].get(source, -1):
            return
        if update["kind"] == "forget":
            self.applied[user][source] = offset
            self.forgotten_at[user] = max(ts, self.forgotten_at.get(user, ts))
            self.counts[user].clear()
        elif ts > self.forgotten_at.get(user, ts - 1):
            self.applied[user][source] = offset
            self.counts[user][update["kind"]] += 1

    @rule(kind=st.sampled_from(["review", "search"]), user=st.sampled_from(USERS), ts=accepted_times | refused_times,
          text=texts, partition=st.integers(0, 1))
    def text_event(self, kind: str, user: str, ts: int, text: str, partition: int) -> None:
        extra = {"item_id": "sku"} if kind == "review" else {}
        record, source = self._record(kind, user, ts, partition, **{TEXT_FIELD[kind]: text}, **extra)
        self._classify(record, source, user, kind, ok=self._in_bounds(ts) and len(text) <= HARD_TEXT)
        self._run([record])

    @rule(user=st.sampled_from(USERS), ts=accepted_times | refused_times, amount=amounts, partition=st.integers(0, 1))
    def order(self, user: str, ts: int, amount: str, partition: int) -> None:
        record, source = self._record("order", user, ts, partition, order_id="o", amount="@", currency="CNY", items=1)
        record = Record(record.topic, record.partition, record.offset, record.key,
                        record.value.replace(b'"@"', amount.encode()))  # the literal as written, number or text
        self._classify(record, source, user, "order", ok=self._in_bounds(ts))
        self._run([record])

    @rule(user=st.sampled_from(USERS), ts=accepted_times | refused_times, region=st.sampled_from(["浙江", "上海"]))
    def attributes(self, user: str, ts: int, region: str) -> None:
        record, source = self._record("user_attributes", user, ts, 0, region=region)
        self._classify(record, source, user, "user_attributes", ok=self._in_bounds(ts))
        self._run([record])

    @rule(user=st.sampled_from(USERS), ts=accepted_times)
    def forget(self, user: str, ts: int) -> None:
        record, source = self._record("forget", user, ts, 0)
        self.forget_sent[user] = max(ts, self.forget_sent.get(user, ts))
        self._classify(record, source, user, "forget", ok=True)
        self._run([record])

    @rule(back=st.integers(min_value=1, max_value=20))
    def redeliver(self, back: int) -> None:
        """A crash before the commit: the last records come again, in one batch."""
        self._run(self.records[-back:])

    @rule()
    def time_passes(self) -> None:
        """No records: a timer tick that may force the warm start with what is buffered."""
        self._run([], force_fit=True)

    def _in_bounds(self, ts: int) -> bool:
        return MIN_EVENT_TS_MS <= ts <= NOW + FUTURE_MS

    def _classify(self, record: Record, source: str, user: str, kind: str, *, ok: bool) -> None:
        self.records.append(record)
        if ok:
            self.valid[(source, record.offset)] = (user, kind)
            self.times[(source, record.offset)] = json.loads(record.value)["ts"]
        else:
            self.invalid.add((source, record.offset))

    @invariant()
    def nothing_is_lost_or_invented(self) -> None:
        if not hasattr(self, "stage1"):
            return
        assert self.dead == self.invalid
        assert self.delivered <= set(self.valid)
        missing = set(self.valid) - self.delivered
        assert self.held <= missing, "stage 1 holds back only records it has not published"
        assert self.unacked == {p for p in (*self.valid, *self.invalid) if p in self.held}, "released is what left held"
        for_a_tick = self.stage1.outbox.positions()
        assert all(self.valid[p][1] in TEXT_FIELD for p in self.held - for_a_tick), "else only texts wait (warm start)"
        for position in missing - self.held:  # never published, yet acked: only texts a forget request erased
            user, kind = self.valid[position]
            assert kind in TEXT_FIELD and self.times[position] <= self.forget_sent.get(user, -1), position

    @invariant()
    def counts_are_exact(self) -> None:
        if not hasattr(self, "stage2"):
            return
        for user in USERS:
            want = {k: n for k, n in self.counts[user].items() if n}
            profile = self.stage2.table.get(user)
            got = {} if profile is None else {k: n for k, n in profile["counts"].items() if n}
            assert got == want, user

    @invariant()
    def every_profile_can_be_published(self) -> None:
        if not hasattr(self, "stage2"):
            return
        for profile in self.stage2.table.values():
            for as_of in (None, NOW + FUTURE_MS):
                PROFILE(public_view(profile, as_of=as_of, updated_at_ms=NOW, rules=RULES))


Pipeline.TestCase.settings = settings(max_examples=80, stateful_step_count=30, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
TestPipeline = Pipeline.TestCase
