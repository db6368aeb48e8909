"""Token buckets for lookups that could be used to enumerate users (raw id -> pseudonym).

A raw-id lookup hashes whatever it is given, so without a limit it is an oracle that
confirms guessed phone numbers or e-mails at network speed. Each client gets a bucket
(``rate`` lookups per second, bursts up to ``burst``), and all clients together share one
more, so many clients cannot add up to an unlimited rate. Clients are kept in a bounded
LRU: the least recently seen are dropped, which only ever gives them a full bucket back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take`` spends one when there is one."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        """Spend a token; False when the bucket is empty.

        >>> b = TokenBucket(rate=1.0, burst=2.0, tokens=2.0, stamp=0.0)
        >>> [b.take(0.0), b.take(0.0), b.take(0.0), b.take(1.0)]
        [True, True, False, True]
        """
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def retry_after(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self.tokens) / self.rate) if self.rate > 0 else float("inf")


class RateLimiter:
    """Per-client buckets plus one shared bucket (``global_factor`` times the per-client rate)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        *,
        global_factor: float = 4.0,
        max_clients: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        now = clock()
        self.shared = TokenBucket(rate * global_factor, burst * global_factor, burst * global_factor, now)
        self.clients: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, client: str) -> tuple[bool, float]:
        """(allowed, seconds to wait before retrying when not)."""
        now = self.clock()
        bucket = self.clients.pop(client, None) or TokenBucket(self.rate, self.burst, self.burst, now)
        self.clients[client] = bucket
        while len(self.clients) > self.max_clients:
            self.clients.popitem(last=False)
        if not bucket.take(now):
            return False, bucket.retry_after()
        if not self.shared.take(now):
            bucket.tokens += 1.0
            return False, self.shared.retry_after()
        return True, 0.0
