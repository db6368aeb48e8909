"""The event-time watermark of stage 1: per-partition maxima, idleness, and the tick schedule.

Event time every owned, non-idle partition has reached, minus the allowed lateness, and
never past an event still held back (warm-up). Taking the minimum over partitions (not the
newest event seen) keeps a lagging topic or partition from being judged silent. A
partition stops holding the watermark back (Flink's idleness) only when it is idle: read to
its end offset and without records for ``idle_after`` seconds. A partition that is merely
waiting behind a busy encoder still has records to deliver, so it is never idle.

Ticks follow a fixed schedule of event time: one for every multiple of ``tick_every_ms`` the
watermark passes, in order, however far it moves in one batch (a backlog), so churn checks
happen at the same event times whether the input is read live or at full speed. The
watermark stays more than ``lateness_ms`` before any held event, so that the tick for b
always comes after every update with ts <= b + lateness (see stream.core.profile.catch_up).

Plain state, no clock of its own: callers pass a monotonic reading ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_TICKS = 400  # boundaries ticked at once, at most: a first watermark or a long outage ticks the newest ones


class Watermark:
    """Per-partition event-time maxima and read positions; ``value`` only moves forward."""

    def __init__(self, *, lateness_ms: int = 0, idle_after: float = 30.0, tick_every_ms: int = 86_400_000) -> None:
        self.lateness_ms = lateness_ms
        self.idle_after = idle_after
        self.tick_every_ms = tick_every_ms
        self.partition_max: dict[str, int] = {}  # newest event time per "topic/partition"
        self.partition_seen: dict[str, float] = {}  # monotonic time of the last record (or of first sight)
        self.partition_next: dict[str, int] = {}  # next offset to read
        self.value = 0
        self.last_tick: int | None = None
        self.first_ms: int | None = None  # oldest event time seen: where the tick schedule starts

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: read positions and idleness are rebuilt by the next run."""
        return {"partition_max": dict(self.partition_max), "watermark": self.value, "last_tick": self.last_tick,
                "first_event": self.first_ms}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.partition_max = dict(state["partition_max"])
        self.value = state["watermark"]
        self.last_tick = state["last_tick"]
        self.first_ms = state.get("first_event")

    def owned(self, sources: Iterable[str], now: float) -> None:
        """Partitions assigned to this worker; one never heard of starts its idleness clock now."""
        for source in sources:
            self.partition_seen.setdefault(source, now)

    def read(self, source: str, offset: int, now: float) -> None:
        """A record was consumed from ``source`` (whether or not it was valid)."""
        self.partition_seen[source] = now
        self.partition_next[source] = max(self.partition_next.get(source, 0), offset + 1)

    def event(self, source: str, ts_ms: int) -> None:
        """A valid event with event time ``ts_ms`` came from ``source``."""
        self.partition_max[source] = max(self.partition_max.get(source, 0), ts_ms)
        self.first_ms = ts_ms if self.first_ms is None else min(self.first_ms, ts_ms)

    def advance(self, highwaters: Mapping[str, int | None], now: float, held_from_ms: int | None = None) -> int:
        """Move forward as far as every partition allows; ``held_from_ms`` is the oldest held event's time.

        ``highwaters`` maps the owned partitions to their end offsets (None while unknown).
        """
        sources = set(highwaters) | set(self.partition_max)

        def idle(source: str) -> bool:
            end = highwaters.get(source)
            caught_up = end is not None and self.partition_next.get(source, 0) >= end
            return caught_up and now - self.partition_seen.get(source, now) >= self.idle_after

        active = [self.partition_max.get(s) for s in sources if not idle(s)]
        if None in active or not self.partition_max:
            return self.value
        # Every partition idle: everything there is has been read, so event time is the newest seen.
        candidate = (min(a for a in active if a is not None) if active else max(self.partition_max.values()))
        candidate -= self.lateness_ms
        if held_from_ms is not None:
            candidate = min(candidate, held_from_ms - self.lateness_ms - 1)
        self.value = max(self.value, candidate)
        return self.value

    def ticks(self) -> list[int]:
        """Every boundary of the check schedule (multiples of ``tick_every_ms``) passed since the last tick, oldest first."""
        if not self.value:
            return []
        step = self.tick_every_ms
        last = self.value // step * step
        if self.last_tick is None:
            # The schedule starts at the oldest boundary whose check includes an event (b + lateness >= the
            # oldest event), fixed once the watermark has moved: the boundary before it then counts as ticked,
            # so the Outbox lets updates within the first check's reach go at once instead of holding each
            # one for its max wait until event time passes the first boundary (up to a day when live).
            self.last_tick = -((self.lateness_ms - (self.first_ms or self.value)) // step) * step - step
        start = max((self.last_tick // step + 1) * step, last - (MAX_TICKS - 1) * step)
        if start > last:
            return []
        self.last_tick = last
        return list(range(start, last + 1, step))


MAX_WAITING = 100_000  # updates held back for a tick at most; beyond, the oldest go out early (see Outbox)


def _release_times(updates: Iterable[dict[str, Any]]) -> dict[int, int]:
    """Per update (by id), the event time from which it may go out: its own, or a later one before it.

    Stage 2 skips an update whose offset is at or below the last one applied for its user and
    source partition (that is how redelivery is made idempotent), so a user's updates from one
    partition must reach it in offset order. An update therefore never overtakes an earlier
    one of the same user and partition: it goes out at the newest event time among itself and
    those before it.
    """
    due: dict[int, int] = {}
    newest: dict[tuple[str, str], int] = {}
    for u in sorted(updates, key=lambda u: (u["source"], u["offset"])):
        lane = (u["source"], u["user_id"])
        newest[lane] = max(newest.get(lane, u["ts"]), u["ts"])
        due[id(u)] = newest[lane]
    return due


class Outbox:
    """Puts stage 1's updates and ticks in event-time order for stage 2.

    The rule: the tick for boundary b is sent after every update with ts <= b + lateness and
    before every update with ts > b + lateness. Live, the watermark passes b only once every
    partition has been read past b + lateness, so the first half holds by itself; the second
    half does not when one partition is read ahead of another (a backlog, or one batch
    spanning the boundary), so such updates wait here for their tick. The churn check at b
    then sees exactly the events up to b + lateness however fast the input was read. Events
    later than the watermark (beyond the allowed lateness) are applied when they come. An
    update never waits longer than ``max_wait`` seconds (the idleness delay): a watermark that
    cannot move (a partition whose end is unknown) must not stop profiles; the per-user
    catch-up of stage 2 then keeps the checks right but for cross-partition skew. A user's
    updates from one partition keep their offset order (see :func:`_release_times`).
    """

    def __init__(self, *, lateness_ms: int, tick_every_ms: int, max_wait: float = 30.0) -> None:
        self.lateness_ms = lateness_ms
        self.tick_every_ms = tick_every_ms
        self.max_wait = max_wait
        self.waiting: list[dict[str, Any]] = []
        self.since: dict[tuple[str, int], float] = {}  # when each waiting update came (monotonic seconds)

    def positions(self) -> frozenset[tuple[str, int]]:
        """("topic/partition", offset) of the updates still waiting (their records must not be acked)."""
        return frozenset((u["source"], u["offset"]) for u in self.waiting)

    def release(
        self, updates: Iterable[dict[str, Any]], ticks: list[int], last_tick: int | None, now: float = 0.0
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Updates to send now in order, and for each of ``ticks`` how many of them go before it.

        ``last_tick`` is the newest boundary ticked so far (None before the first): updates
        within reach of the next one go out now, later ones wait.
        """
        updates = list(updates)
        for u in updates:
            self.since.setdefault((u["source"], u["offset"]), now)
        due = _release_times([*self.waiting, *updates])
        pending = sorted([*self.waiting, *updates], key=lambda u: (due[id(u)], u["source"], u["offset"]))
        out: list[dict[str, Any]] = []
        before: list[int] = []
        i = 0
        for boundary in ticks:
            while i < len(pending) and due[id(pending[i])] <= boundary + self.lateness_ms:
                out.append(pending[i])
                i += 1
            before.append(len(out))
        if last_tick is not None:
            reach = (last_tick // self.tick_every_ms + 1) * self.tick_every_ms + self.lateness_ms
            while i < len(pending) and due[id(pending[i])] <= reach:
                out.append(pending[i])
                i += 1
        rest = pending[i:]
        overdue = [u for u in rest if now - self.since[(u["source"], u["offset"])] >= self.max_wait]
        rest = [u for u in rest if now - self.since[(u["source"], u["offset"])] < self.max_wait]
        overflow = max(0, len(rest) - MAX_WAITING)
        out += sorted([*overdue, *rest[:overflow]], key=lambda u: (due[id(u)], u["source"], u["offset"]))
        self.waiting = rest[overflow:]
        self.since = {(u["source"], u["offset"]): self.since[(u["source"], u["offset"])] for u in self.waiting}
        return out, before
