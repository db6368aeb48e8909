from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_client_gets_its_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=5.0, clock=clock)
    assert [limiter.allow("a")[0] for _ in range(7)] == [True] * 5 + [False] * 2
    allowed, wait = limiter.allow("a")
    assert not allowed and 0 < wait <= 0.5
    clock.now = 0.5
    assert limiter.allow("a")[0]
    assert not limiter.allow("a")[0]


def test_many_clients_cannot_add_up_to_an_unlimited_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2.0, clock=clock, global_factor=4.0)
    allowed = sum(limiter.allow(f"client-{i}")[0] for i in range(100))
    assert allowed == 8  # the shared bucket's burst


def test_forgotten_clients_do_not_grow_memory() -> None:
    limiter = RateLimiter(rate=1.0, burst=1.0, clock=Clock(), global_factor=1e9, max_clients=50)
    for i in range(1000):
        limiter.allow(str(i))
    assert len(limiter.clients) == 50


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.sampled_from("abc")), max_size=200))
def test_never_more_than_burst_plus_rate_times_elapsed(steps: list[tuple[float, str]]) -> None:
    clock = Clock()
    limiter = RateLimiter(rate=3.0, burst=4.0, clock=clock, global_factor=1e9)
    granted: dict[str, int] = {}
    for dt, client in steps:
        clock.now += dt
        if limiter.allow(client)[0]:
            granted[client] = granted.get(client, 0) + 1
    for n in granted.values():
        assert n <= 4.0 + 3.0 * clock.now + 1e-9
