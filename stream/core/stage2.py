"""Stage 2 ``apply`` as plain code: per-user profiles over two mappings, returning what to publish.

The Faust shell passes its two tables (``profile-state`` and ``forgotten``; any mutable
mapping works, so tests pass dicts) and publishes the returned :class:`Outputs` in order.

* :meth:`ProfileStage.apply_update`: apply an update unless its (source partition, offset)
  was applied already (redelivery), store the profile, publish it; first make the churn
  checks the event comes after (:func:`~stream.core.profile.catch_up`).
* :meth:`ProfileStage.forget`: the right to be forgotten. The profile is deleted, only its
  applied offsets and the request's event time are kept (so a redelivered update, or a late
  one from before the request, cannot resurrect it; later events start a new profile), and a
  tombstone is published. The user's keyword contributions must leave the shared model too:
  :meth:`ProfileStage.terms_to_forget` reads them first, and the shell has them delivered to
  the model owner before it calls ``forget`` (stage 2 never touches stage 1's state itself).
  Deleting first would lose them to a crash between the table write and the delivery: the
  redelivered request finds the profile gone and the words would stay in the model.
* :meth:`ProfileStage.tick`: the churn check at a boundary of event time for every user of
  the partition not checked there yet. Alerts come only from checks, so they are a function
  of event time: the same feed read as a backlog or live gives the same alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from stream.core.messages import ChurnAlert, Kind, Tick, Update, parse_internal
from stream.core.profile import (
    Profile,
    Rules,
    already_applied,
    apply_update,
    catch_up,
    check_due,
    churn_step,
    new_profile,
    public_view,
)


REPEAT = "repeat"  # churn field: [{"by": the message, "alerts": what it raised}] for the last REPEAT_KEPT messages
REPEAT_KEPT = 4  # a crash redelivers every message since the last commit: a user's alerts of one such window


def _remember_alerts(profile: Profile, alerts: list[ChurnAlert], by: list[Any]) -> None:
    """Keep the alerts ``by`` raised, so that a redelivery of it publishes them again: its table write may
    have reached the broker without them. A crash redelivers every message since the last commit, later
    ones included, so messages that raise nothing leave the kept ones alone."""
    if alerts:
        kept = [entry for entry in profile["churn"].get(REPEAT) or () if entry["by"] != by]
        profile["churn"][REPEAT] = [*kept, {"by": by, "alerts": alerts}][-REPEAT_KEPT:]


def _kept_alerts(profile: Profile, by: list[Any]) -> list[ChurnAlert] | None:
    """The alerts ``by`` raised, if :func:`_remember_alerts` still keeps them."""
    return next((entry["alerts"] for entry in profile["churn"].get(REPEAT) or () if entry["by"] == by), None)


@dataclass
class Outputs:
    """What one message makes stage 2 publish, keyed by user id."""

    profiles: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    alerts: list[tuple[str, ChurnAlert]] = field(default_factory=list)
    tombstones: list[str] = field(default_factory=list)

    def extend(self, more: Outputs) -> None:
        """Append what ``more`` publishes (profiles and alerts, in order)."""
        self.profiles += more.profiles
        self.alerts += more.alerts


class ProfileStage:
    """The per-user stage over ``table`` (user id -> profile) and ``forgotten`` (user id -> applied offsets)."""

    def __init__(
        self,
        table: MutableMapping[str, Profile],
        forgotten: MutableMapping[str, dict[str, Any]],
        rules: Rules,
        clock_ms: Callable[[], int],
    ) -> None:
        self.table = table
        self.forgotten = forgotten
        self.rules = rules
        self.clock_ms = clock_ms

    def handle(self, value: Mapping[str, Any], partition: int) -> Outputs:
        """One message of the internal topic, dispatched by kind."""
        message = parse_internal(value)
        if message["kind"] == Kind.TICK:
            return self.tick(message, partition)  # type: ignore[arg-type]
        if message["kind"] == Kind.FORGET:
            return self.forget(message)  # type: ignore[arg-type]
        return self.apply_update(message, partition)  # type: ignore[arg-type]

    def apply_update(self, update: Update, partition: int) -> Outputs:
        """Make the churn checks the event comes after (alerts only ever come from checks), then apply it."""
        user = update["user_id"]
        profile = self._current(user)
        if already_applied(profile, update):
            # Its table write may have reached the broker and its outputs not (a crash between the two):
            # a redelivery publishes the stored profile again, unchanged (the compacted topic keeps one).
            return self._republish(profile, [update["source"], update["offset"]]) if user in self.table else Outputs()
        if self._erased(user, int(update["ts"])):
            return Outputs()
        profile, checks = catch_up(profile, int(update["ts"]), self.rules)
        updated = apply_update(profile, update, self.rules)
        updated["partition"] = partition
        _remember_alerts(updated, [alert for _, alert, _ in checks], [update["source"], update["offset"]])
        self.table[user] = updated
        out = Outputs()
        for as_of, alert, version in checks:
            out.extend(self._publish(version, alert, as_of))
        out.extend(self._publish(updated, None, updated["as_of"]))
        return out

    def terms_to_forget(self, update: Update) -> dict[str, dict[str, int]] | None:
        """The keyword counts a forget request takes out of the shared model ({} for a user without a
        profile); None once the request is applied (a redelivery has nothing left to take back)."""
        profile = self._current(update["user_id"])
        if already_applied(profile, update):
            return None
        return {c: dict(t) for c, t in profile["terms"].items()}

    def forget(self, update: Update) -> Outputs:
        """Tombstones on the changelog and the profiles topic (after :meth:`terms_to_forget`'s words left).

        A redelivered request publishes its tombstone again while the user has no profile: the changelog's
        delete may have reached the broker without the tombstone, which would leave the compacted topic
        holding the forgotten profile (a later profile, from events after the request, is left alone)."""
        user = update["user_id"]
        profile = self._current(user)
        if already_applied(profile, update):
            return Outputs(tombstones=[] if user in self.table else [user])
        at = max(int(update["ts"]), (self.forgotten.get(user) or {}).get("at", int(update["ts"])))
        self.forgotten[user] = {"applied": {**profile["applied"], update["source"]: update["offset"]}, "at": at}
        if user in self.table:
            del self.table[user]
        return Outputs(tombstones=[user])

    def tick(self, tick: Tick, partition: int) -> Outputs:
        out = Outputs()
        watermark = tick["watermark"]
        for user, profile in list(self.table.items()):
            if profile.get("partition") != partition:
                continue
            if not check_due(profile, watermark):
                if _kept_alerts(profile, ["tick", watermark]) is not None:  # this tick, again
                    out.extend(self._republish(profile, ["tick", watermark]))
                continue
            updated, alert = churn_step(profile, watermark, self.rules)
            if alert is not None:
                _remember_alerts(updated, [alert], ["tick", watermark])
                self.table[user] = updated
                out.extend(self._publish(updated, alert, watermark))
        return out

    def view(self, user: str, as_of: int) -> dict[str, Any] | None:
        """The public profile of ``user`` (None when unknown or forgotten)."""
        profile = self.table.get(user)
        if profile is None:
            return None
        return public_view(profile, as_of=as_of, updated_at_ms=self.clock_ms(), rules=self.rules)

    def _erased(self, user: str, ts_ms: int) -> bool:
        """An event at or before the user's forget request is dropped whenever it arrives (late, replayed)."""
        at = (self.forgotten.get(user) or {}).get("at")
        return at is not None and ts_ms <= at

    def _current(self, user: str) -> Profile:
        profile = self.table.get(user)
        if profile is None:
            profile = new_profile(user)
            profile["applied"] = dict((self.forgotten.get(user) or {}).get("applied", {}))
        return profile

    def _republish(self, profile: Profile, by: list[Any]) -> Outputs:
        """A redelivered message's outputs: the stored profile, and the alerts it raised if they are kept
        (at least once: a subscriber may see an alert twice, with the same user, type and as_of)."""
        out = self._publish(profile, None, profile["as_of"])
        out.alerts = [(profile["user_id"], alert) for alert in _kept_alerts(profile, by) or ()]
        return out

    def _publish(self, profile: Profile, alert: ChurnAlert | None, as_of: int) -> Outputs:
        view = public_view(profile, as_of=as_of, updated_at_ms=self.clock_ms(), rules=self.rules)
        user = profile["user_id"]
        return Outputs(profiles=[(user, view)], alerts=[] if alert is None else [(user, alert)])
