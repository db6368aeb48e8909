"""Stage 2 without Kafka: redelivery, forget-then-late-update, tick transitions, outputs that meet their contracts."""

from __future__ import annotations

import json
from pathlib import Path

import fastjsonschema
import numpy as np

from stream.core.messages import make_tick, make_update
from stream.core.profile import DAY_MS, Rules
from stream.core.stage2 import ProfileStage
from stream.worker.json_table import JsonValues

T0 = 1_767_225_600_000
RULES = Rules(inactivity_days=14)
SCHEMAS = Path(__file__).parents[2] / "schemas"
PROFILE = fastjsonschema.compile(json.loads((SCHEMAS / "profile.schema.json").read_text()), formats={"date-time": lambda _: True})
ALERT = fastjsonschema.compile(json.loads((SCHEMAS / "churn-alert.schema.json").read_text()), formats={"date-time": lambda _: True})


def stage() -> ProfileStage:
    return ProfileStage({}, {}, RULES, clock_ms=lambda: T0)


def order(offset: int, ts: int, user: str = "u1", source: str = "orders/0") -> dict:
    return dict(make_update(kind="order", user_id=user, event_id=f"o{offset}", ts_ms=ts, source=source, offset=offset,
                            watermark=ts, data={"cents": 1000, "category": "书", "items": 1}))


def review(offset: int, ts: int, user: str = "u1") -> dict:
    return dict(make_update(kind="review", user_id=user, event_id=f"r{offset}", ts_ms=ts, source="reviews/0",
                            offset=offset, watermark=ts, data={"tokens": ["作者", "情节"], "sentiment": 0.5},
                            embedding=np.ones(4, np.float32) / 2, cluster=2, keywords=["作者"], model_version="m"))


def forget(offset: int, user: str = "u1") -> dict:
    return dict(make_update(kind="forget", user_id=user, event_id=f"f{offset}", ts_ms=T0, source="forget/0",
                            offset=offset, watermark=T0))


def test_an_update_publishes_a_profile_that_meets_the_contract() -> None:
    s = stage()
    out = s.handle(order(0, T0), partition=1)
    [(user, view)] = out.profiles
    PROFILE(view)
    assert user == "u1" and view["consumption"]["orders_total"] == 1 and s.table["u1"]["partition"] == 1


def test_a_redelivered_update_changes_nothing_and_publishes_the_stored_profile_again() -> None:
    """The first delivery's table write may have reached the broker and its profile not."""
    s = stage()
    [(_, first)] = s.handle(order(0, T0), 0).profiles
    stored = json.dumps(s.table["u1"], sort_keys=True)
    out = s.handle(order(0, T0), 0)
    assert out.profiles == [("u1", first)] and out.alerts == []
    assert json.dumps(s.table["u1"], sort_keys=True) == stored


def test_forget_deletes_tombstones_and_hands_back_the_users_keyword_counts() -> None:
    s = stage()
    s.handle(review(0, T0), 0)
    assert s.terms_to_forget(forget(0)) == {"2": {"作者": 1, "情节": 1}}
    assert "u1" in s.table, "reading the words to take back changes nothing"
    out = s.handle(forget(0), 0)
    assert "u1" not in s.table and out.tombstones == ["u1"]
    assert "u1" in s.forgotten
    assert s.terms_to_forget(forget(0)) is None, "an applied request has nothing left to take back"


def test_a_request_redelivered_before_its_table_write_hands_back_the_words_again() -> None:
    """A crash after the words were sent but before the profile was deleted: the redelivered request
    must send them again (the owner takes a request out once, by its place in stage 2's input)."""
    s = stage()
    s.handle(review(0, T0), 0)
    first = s.terms_to_forget(forget(0))
    assert s.terms_to_forget(forget(0)) == first == {"2": {"作者": 1, "情节": 1}}


def test_a_late_or_redelivered_update_after_forget_cannot_resurrect_the_profile() -> None:
    s = stage()
    s.handle(review(0, T0), 0)
    s.handle(order(5, T0), 0)
    s.handle(forget(0), 0)
    assert s.handle(review(0, T0), 0).profiles == []  # redelivered after the forget
    assert s.handle(order(5, T0), 0).profiles == []
    assert "u1" not in s.table
    assert s.handle(forget(0), 0).tombstones == ["u1"], "the same request again repeats only its tombstone"
    assert "u1" not in s.table and s.terms_to_forget(forget(0)) is None


def test_a_redelivered_forget_leaves_a_profile_begun_after_it_alone() -> None:
    s = stage()
    s.handle(order(0, T0), 0)
    s.handle(forget(0), 0)
    s.handle(order(1, T0 + DAY_MS), 0)
    assert s.handle(forget(0), 0).tombstones == [] and "u1" in s.table


def test_a_new_event_after_forget_starts_a_fresh_profile() -> None:
    s = stage()
    s.handle(order(0, T0), 0)
    s.handle(forget(0), 0)
    [(_, view)] = s.handle(order(1, T0 + DAY_MS), 0).profiles
    assert view["consumption"]["orders_total"] == 1


def test_forgetting_an_unknown_user_still_tombstones_and_remembers() -> None:
    s = stage()
    assert s.terms_to_forget(forget(3, user="ghost")) == {}, "a tag may be in the model without a profile"
    out = s.handle(forget(3, user="ghost"), 0)
    assert out.tombstones == ["ghost"] and "ghost" in s.forgotten


def test_ticks_alert_once_on_silence_and_only_for_their_partition() -> None:
    s = stage()
    s.handle(order(0, T0, user="a"), 0)
    s.handle(order(0, T0, user="b", source="orders/1"), 1)
    assert s.handle(make_tick(T0 + 2 * DAY_MS), 0).alerts == []
    late = T0 + 60 * DAY_MS
    out = s.handle(make_tick(late), 0)
    [(user, alert)] = out.alerts
    ALERT(alert)
    assert user == "a" and alert["type"] == "churn_risk" and [u for u, _ in out.profiles] == ["a"]
    assert s.handle(make_tick(late + DAY_MS), 0).alerts == [], "an alert is an edge, not a level"
    assert not s.table["b"]["churn"]["alerted"]


def test_a_returning_user_recovers() -> None:
    s = stage()
    s.handle(order(0, T0), 0)
    s.handle(make_tick(T0 + 60 * DAY_MS), 0)
    assert s.handle(order(1, T0 + 61 * DAY_MS), 0).alerts == [], "alerts come from churn checks, in event time"
    out = s.handle(make_tick(T0 + 62 * DAY_MS), 0)
    [(_, alert)] = out.alerts
    ALERT(alert)
    assert alert["type"] == "recovered" and s.table["u1"]["churn"]["alerted"] is False


def test_a_redelivered_tick_or_update_publishes_the_alerts_it_raised_again() -> None:
    """The check's table write may have reached the broker without its alert: at least once, never lost."""
    s = stage()
    s.handle(order(0, T0), 0)
    late = T0 + 60 * DAY_MS
    [(_, risk)] = s.handle(make_tick(late), 0).alerts
    assert s.handle(make_tick(late), 0).alerts == [("u1", risk)], "the same tick again"
    assert s.handle(make_tick(late + DAY_MS), 0).alerts == [], "a later tick raises nothing"
    back = order(1, T0 + 62 * DAY_MS)  # its catch-up check at the 61st day raises nothing; applying it recovers later
    s.handle(back, 0)
    [(_, recovered)] = s.handle(make_tick(T0 + 63 * DAY_MS), 0).alerts
    assert recovered["type"] == "recovered"
    assert s.handle(back, 0).alerts == [], "an update that raised nothing repeats no alert"
    silent = order(2, T0 + 200 * DAY_MS)  # its catch-up checks raise churn_risk before it is applied
    [(_, again)] = s.handle(silent, 0).alerts
    assert s.handle(silent, 0).alerts == [("u1", again)]


def test_a_crash_redelivers_the_whole_window_and_each_message_repeats_its_own_alerts() -> None:
    """Everything since the last commit comes again, later messages of the same user included."""
    s = ProfileStage(JsonValues({}), JsonValues({}), RULES, clock_ms=lambda: T0)
    s.handle(order(0, T0), 0)
    late = T0 + 60 * DAY_MS
    window = [make_tick(late), order(1, late + 3_600_000), order(2, late + 2 * DAY_MS), make_tick(late + 3 * DAY_MS)]
    first = [s.handle(m, 0) for m in window]
    raised = [[a["type"] for _, a in out.alerts] for out in first]
    assert raised == [["churn_risk"], [], ["recovered"], []], "a tick and an update raise, later messages do not"
    again = [s.handle(m, 0) for m in window]
    assert [out.alerts for out in again] == [out.alerts for out in first]
    assert [len(out.profiles) for out in again] == [1, 1, 1, 0], "what published a profile publishes it again"


def test_view_of_an_unknown_user_is_none() -> None:
    assert stage().view("nobody", as_of=T0) is None
