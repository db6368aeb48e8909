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

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, KeysView, Mapping
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
        self.assigned: set[str] = set()  # the partitions of the last owned() call
        self.value = 0
        self.last_tick: int | None = None
        self.first_ms: int | None = None  # oldest event time seen: where the tick schedule starts
        self.progress_at: float | None = None  # monotonic time the value last moved or was held by what is read

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
        """Partitions assigned to this worker; one newly (re)assigned starts its idleness clock now, so a
        partition that comes back after a while on another worker is not idle before it could be silent."""
        current = set(sources)
        for source in current - self.assigned:
            self.partition_seen[source] = now
        self.assigned = current

    def read(self, source: str, offset: int, now: float) -> None:
        """A record was consumed from ``source`` (whether or not it was valid)."""
        self.partition_seen[source] = now
        self.partition_next[source] = max(self.partition_next.get(source, 0), offset + 1)

    def stalled(self, highwaters: Mapping[str, int | None], now: float) -> list[str]:
        """Owned partitions that look unread (their end is past what this run read) yet sent nothing for
        ``idle_after`` seconds. After a restart or a rebalance, reading starts at the committed offset, so a
        partition with no new record never reaches its end here: :meth:`resume_from` says where it started."""
        return [s for s, end in highwaters.items() if self._unread(s, end) and self._silent(s, now)]

    def _unread(self, source: str, end: int | None) -> bool:
        """Whether ``source`` has records before its end offset ``end`` (None: unknown) still to be read."""
        return end is not None and self.partition_next.get(source, 0) < end

    def _silent(self, source: str, now: float) -> bool:
        return now - self.partition_seen.get(source, now) >= self.idle_after

    def resume_from(self, offsets: Mapping[str, int]) -> None:
        """Reading of these partitions (re)started at these offsets (the group's committed offsets): every
        record before them was read, and its event time checkpointed, before it was committed."""
        for source, offset in offsets.items():
            self.partition_next[source] = max(self.partition_next.get(source, 0), offset)

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
            return end is not None and not self._unread(source, end) and self._silent(source, now)

        def unread(source: str) -> bool:
            return self._unread(source, highwaters.get(source))

        if self.progress_at is None:
            self.progress_at = now
        active = {s: self.partition_max.get(s) for s in sources if not idle(s)}
        if None in active.values() or not self.partition_max:
            if any(unread(s) for s, m in active.items() if m is None):
                self.progress_at = now
            return self.value
        # Every partition idle: everything there is has been read, so event time is the newest seen.
        candidate = (min(active.values()) if active else max(self.partition_max.values()))  # type: ignore[type-var]
        lowest = candidate
        candidate -= self.lateness_ms
        if held_from_ms is not None:
            candidate = min(candidate, held_from_ms - self.lateness_ms - 1)
        # Held by texts kept for the warm start (their own timeout ends that), or by the slowest partitions
        # while they still have records to read (a backlog): progress, however slow.
        if candidate > self.value or held_from_ms is not None or any(unread(s) for s, m in active.items() if m == lowest):
            self.progress_at = now
        self.value = max(self.value, candidate)
        return self.value

    def stuck(self, now: float) -> bool:
        """Whether the value has not moved for ``idle_after`` seconds although nothing being read holds it: a
        partition whose end is unknown, say. A backlog moves it batch by batch however slowly, and is not stuck."""
        return self.progress_at is not None and now - self.progress_at >= self.idle_after

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


class _Waiting:
    """An update in the outbox: its lane position and the event time from which it may go out (``due``)."""

    __slots__ = ("alive", "due", "offset", "order", "source", "ts", "update", "version")

    def __init__(self, update: dict[str, Any], order: int) -> None:
        self.update = update
        self.source: str = update["source"]
        self.offset: int = update["offset"]
        self.ts: int = update["ts"]
        self.order = order  # arrival: keeps redelivered copies of one position in the order they came
        self.due = self.ts
        self.version = 0  # of its current heap entry; older entries are stale
        self.alive = True


def _by_offset(item: _Waiting) -> int:
    return item.offset


class _Lane:
    """The waiting updates of one (source, user) in offset order; ``items[head:]`` are the waiting ones.

    Updates leave a lane almost always from its front (release follows event time, which a lane
    keeps in offset order), so the front is a moving index rather than a list shift.
    """

    __slots__ = ("head", "items")

    def __init__(self) -> None:
        self.items: list[_Waiting] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def remove(self, item: _Waiting) -> None:
        if self.items[self.head] is item:
            self.head += 1
            if self.head >= 64 and 2 * self.head >= len(self.items):
                del self.items[: self.head]
                self.head = 0
            return
        i = bisect_left(self.items, item.offset, lo=self.head, key=_by_offset)
        while self.items[i] is not item:
            i += 1
        del self.items[i]


class Outbox:
    """Puts stage 1's updates and ticks in event-time order for stage 2.

    The rule: the tick for boundary b is sent after every update with ts <= b + lateness and
    before every update with ts > b + lateness. Live, the watermark passes b only once every
    partition has been read past b + lateness, so the first half holds by itself; the second
    half does not when one partition is read ahead of another (a backlog, or one batch
    spanning the boundary), so such updates wait here for their tick. The churn check at b
    then sees exactly the events up to b + lateness however fast the input was read. Events
    later than the watermark (beyond the allowed lateness) are applied when they come. While
    the watermark is ``stuck`` (it has not moved for the idleness delay), an update waits at most
    ``max_wait`` seconds: a watermark that cannot move (a partition whose end is unknown) must
    not stop profiles; the per-user catch-up of stage 2 then keeps the checks right but for
    cross-partition skew. A backlog moves the watermark batch by batch, so there updates wait
    for their tick however long that takes: released early, an order read ahead of the reviews
    would let its user's check see the order but not the reviews before it (a false alert).

    A user's updates from one partition keep their offset order. Stage 2 skips an update whose
    offset is at or below the last one applied for its user and source partition (that is how
    redelivery is made idempotent), so an update never overtakes an earlier waiting one of the
    same (source, user) lane: it goes out at the newest event time among itself and the lane's
    waiting updates before it (its ``due``). Waiting updates go out in (due, source, offset) order.

    Incremental, so that a batch costs in proportion to itself and not to everything waiting
    (a backlog can keep 100,000 updates here): a heap keyed by that order, the lanes in offset
    order (an update appended to its lane takes the lane's last due), and a heap of arrival
    times for ``max_wait``. Only updates arriving out of offset order, or leaving early
    (overdue, overflow), make a lane's later dues be worked out again, and only as far as they change.
    """

    def __init__(self, *, lateness_ms: int, tick_every_ms: int, max_wait: float = 30.0) -> None:
        self.lateness_ms = lateness_ms
        self.tick_every_ms = tick_every_ms
        self.max_wait = max_wait
        self._heap: list[tuple[int, str, int, int, int, _Waiting]] = []  # (due, source, offset, order, version, item)
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._at: dict[tuple[str, int], list[_Waiting]] = {}  # position -> its waiting copies (redelivery)
        self._since: dict[tuple[str, int], tuple[float, int]] = {}  # position -> (when it came, arrival entry)
        self._arrivals: list[tuple[float, int, tuple[str, int]]] = []  # heap of (since, entry, position)
        self._order = 0
        self._count = 0
        self._stale = 0  # heap entries left behind by a changed due or an early release

    def __len__(self) -> int:
        return self._count

    def positions(self) -> KeysView[tuple[str, int]]:
        """("topic/partition", offset) of the updates still waiting (their records must not be acked); a live view."""
        return self._at.keys()

    def release(
        self, updates: Iterable[dict[str, Any]], ticks: list[int], last_tick: int | None, now: float = 0.0,
        stuck: bool = True,
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Updates to send now in order, and for each of ``ticks`` how many of them go before it.

        ``last_tick`` is the newest boundary ticked so far (None before the first): updates
        within reach of the next one go out now, later ones wait.
        """
        for u in updates:
            self._add(u, now)
        out: list[dict[str, Any]] = []
        before: list[int] = []
        for boundary in ticks:
            self._release_due(boundary + self.lateness_ms, out)
            before.append(len(out))
        if last_tick is not None:
            self._release_due((last_tick // self.tick_every_ms + 1) * self.tick_every_ms + self.lateness_ms, out)
        # Early releases leave gaps in their lanes: the dues there are worked out again once all have gone,
        # as the order among them is that of the dues they had when the batch came.
        early = self._overdue(now) if stuck else []
        for item in early:
            self._drop(item)
        for _ in range(max(0, self._count - MAX_WAITING)):
            item = self._pop()
            self._drop(item)
            early.append(item)
        early.sort(key=lambda i: (i.due, i.source, i.offset, i.order))
        out += [i.update for i in early]
        changed: dict[tuple[str, str], tuple[int, int]] = {}
        for i in early:
            lane = (i.source, i.update["user_id"])
            low, high = changed.get(lane, (i.offset, i.offset))
            changed[lane] = (min(low, i.offset), max(high, i.offset))
        for lane, (low, high) in changed.items():
            if lane in self._lanes:
                self._refresh(self._lanes[lane], low, high)
        self._compact()
        return out, before

    def _add(self, update: dict[str, Any], now: float) -> None:
        self._order += 1
        item = _Waiting(update, self._order)
        position = (item.source, item.offset)
        copies = self._at.setdefault(position, [])
        if not copies:
            self._since[position] = (now, item.order)
            heapq.heappush(self._arrivals, (now, item.order, position))
        copies.append(item)
        self._count += 1
        key = (item.source, update["user_id"])
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        items = lane.items
        if len(lane) and items[-1].offset > item.offset:  # out of offset order: later dues may rise
            i = bisect_right(items, item.offset, lo=lane.head, key=_by_offset)
            items.insert(i, item)
            self._refresh(lane, item.offset, item.offset)
            return
        if len(lane):
            item.due = max(items[-1].due, item.ts)
        items.append(item)
        self._push(item)

    def _refresh(self, lane: _Lane, low: int, high: int) -> None:
        """Work out the lane's dues again from offset ``low`` on, after changes at offsets up to ``high``."""
        items = lane.items
        i = bisect_left(items, low, lo=lane.head, key=_by_offset)
        newest = items[i - 1].due if i > lane.head else None
        for item in items[i:]:
            due = item.ts if newest is None else max(newest, item.ts)
            if due != item.due or not item.version:
                item.due = due
                self._stale += item.version > 0
                self._push(item)
            elif item.offset > high:
                break  # past every change, an unchanged due leaves the rest unchanged
            newest = due

    def _push(self, item: _Waiting) -> None:
        item.version += 1
        heapq.heappush(self._heap, (item.due, item.source, item.offset, item.order, item.version, item))

    def _pop(self) -> _Waiting:
        """The waiting update first in (due, source, offset) order, taken off the heap."""
        while True:
            *_, version, item = heapq.heappop(self._heap)
            if item.alive and version == item.version:
                return item
            self._stale -= 1

    def _release_due(self, until: int, out: list[dict[str, Any]]) -> None:
        """Send every waiting update due at or before ``until``.

        They are at the front of their lanes, and their going changes no other due: a due after
        ``until`` comes from an event time after it.
        """
        heap = self._heap
        while heap:
            due, *_, version, item = heap[0]
            if not (item.alive and version == item.version):
                heapq.heappop(heap)
                self._stale -= 1
            elif due <= until:
                heapq.heappop(heap)
                self._drop(item)
                out.append(item.update)
            else:
                return

    def _overdue(self, now: float) -> list[_Waiting]:
        """The waiting updates that came ``max_wait`` seconds or more before ``now``, every copy of a position."""
        overdue: list[_Waiting] = []
        arrivals = self._arrivals
        while arrivals and now - arrivals[0][0] >= self.max_wait:
            since, entry, position = heapq.heappop(arrivals)
            if self._since.get(position) == (since, entry):
                overdue += self._at[position]
        for item in overdue:
            self._stale += 1  # its heap entry stays behind
        return overdue

    def _drop(self, item: _Waiting) -> None:
        """Take a released update out of its lane and position (its heap entry is popped or left stale)."""
        item.alive = False
        self._count -= 1
        key = (item.source, item.update["user_id"])
        lane = self._lanes[key]
        lane.remove(item)
        if not len(lane):
            del self._lanes[key]
        position = (item.source, item.offset)
        copies = self._at[position]
        copies.remove(item)
        if not copies:
            del self._at[position], self._since[position]

    def _compact(self) -> None:
        """Rebuild a heap once most of its entries are stale, so that neither grows beyond what waits."""
        if self._stale > 1024 and 2 * self._stale > len(self._heap):
            self._heap = [e for e in self._heap if e[-1].alive and e[-2] == e[-1].version]
            heapq.heapify(self._heap)
            self._stale = 0
        if len(self._arrivals) > 1024 and len(self._arrivals) > 2 * len(self._since):
            self._arrivals = [a for a in self._arrivals if self._since.get(a[2]) == (a[0], a[1])]
            heapq.heapify(self._arrivals)
