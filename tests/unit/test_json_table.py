"""The table adapter: stage 2 over encoded bytes behaves as over plain dicts, and stores what Faust's json codec stored."""

from __future__ import annotations

import pytest
from faust.serializers import codecs

from stream.core.messages import make_tick
from stream.core.profile import DAY_MS
from stream.core.stage2 import ProfileStage
from stream.worker.json_table import JsonValues
from tests.unit.test_stage2 import RULES, T0, forget, order, review


def run(table: dict, forgotten: dict) -> list:
    stage = ProfileStage(table, forgotten, RULES, clock_ms=lambda: T0)
    outputs = [
        stage.handle(order(1, T0), 0),
        stage.handle(review(2, T0 + 1000), 0),
        stage.handle(order(3, T0 + 2000, user="u2"), 0),
        stage.handle(order(1, T0), 0),  # redelivered: skipped
        stage.handle(forget(4, user="u2"), 0),
        stage.handle(make_tick(T0 + 40 * DAY_MS), 0),
    ]
    return [(o.profiles, o.alerts, o.tombstones) for o in outputs]


def test_stage2_over_bytes_matches_stage2_over_dicts_and_stores_faust_json() -> None:
    plain, plain_forgotten = {}, {}
    raw, raw_forgotten = {}, {}
    assert run(JsonValues(raw), JsonValues(raw_forgotten)) == run(plain, plain_forgotten)
    assert raw == {user: codecs.dumps("json", value) for user, value in plain.items()}
    assert raw_forgotten == {user: codecs.dumps("json", value) for user, value in plain_forgotten.items()}
    assert set(raw) == {"u1"} and set(raw_forgotten) == {"u2"}


def test_missing_and_default_values_read_as_absent() -> None:
    table = JsonValues({"u1": None, "u2": b'{"a":1}'})
    assert table.get("u0") is None and table.get("u1") is None and table.get("u1", 7) == 7
    assert table["u2"] == {"a": 1} and dict(table.items()) == {"u2": {"a": 1}}
    with pytest.raises(KeyError):  # a None value is Faust's default for a missing key
        table["u1"]
