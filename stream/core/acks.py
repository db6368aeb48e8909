"""Acks in offset order per partition, whatever order records are released in.

Stage 1 releases a record when its update leaves the event-time outbox, and a partition's
records leave in event-time order per user, not in offset order. Faust commits the highest run
of acked offsets it sees and gets two cases wrong (faust-streaming issue 606 and the interval
its consumer records for skipped offsets, which includes the record after them): an unacked
record at the committed offset, or right after a transaction marker or an aborted record, is
committed past as soon as a later one is acked, and lost if the worker dies before releasing
it. Acking each partition in offset order never gives Faust such a case.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
Position = tuple[str, int]  # ("topic/partition", offset)


class InOrderAcks(Generic[T]):
    """Records held until released; :meth:`release` returns those whose every earlier held record of the
    same partition is released too (a record delivered twice, after a rebalance, is held under one position)."""

    def __init__(self) -> None:
        self.held: dict[Position, list[T]] = {}
        self._order: dict[str, list[int]] = {}  # per partition, the held offsets (a heap)
        self._released: set[Position] = set()

    def hold(self, position: Position, item: T) -> None:
        if position not in self.held:
            self.held[position] = []
            heapq.heappush(self._order.setdefault(position[0], []), position[1])
        self.held[position].append(item)

    def release(self, positions: Iterable[Position]) -> list[T]:
        """Mark ``positions`` released; the items that may be acked now, in offset order per partition."""
        sources = set()
        for p in positions:
            if p in self.held:
                self._released.add(p)
                sources.add(p[0])
        out: list[T] = []
        for source in sources:
            order = self._order[source]
            while order and (source, order[0]) in self._released:
                p = (source, heapq.heappop(order))
                self._released.discard(p)
                out.extend(self.held.pop(p))
            if not order:
                del self._order[source]
        return out

    def clear(self) -> None:
        self.held.clear()
        self._order.clear()
        self._released.clear()

    def __len__(self) -> int:
        return len(self.held)
