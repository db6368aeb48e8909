"""Acks in offset order per partition, whatever order records are released in (Faust commits past gaps)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.core.acks import InOrderAcks


def test_a_later_record_released_first_waits_for_the_earlier_one() -> None:
    acks: InOrderAcks[str] = InOrderAcks()
    for offset in (20, 21, 22):
        acks.hold(("orders/0", offset), f"e{offset}")
    acks.hold(("orders/1", 5), "other")
    assert acks.release([("orders/0", 21), ("orders/1", 5)]) == ["other"], "20 is still held: 21 must wait"
    assert acks.release([("orders/0", 20)]) == ["e20", "e21"]
    assert acks.release([("orders/0", 22), ("orders/0", 99)]) == ["e22"] and not acks


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30)), max_size=40), st.randoms(use_true_random=False))
def test_what_is_acked_is_always_a_prefix_of_each_partition_and_everything_once_all_is_released(
    deliveries: list[tuple[int, int]], rng
) -> None:  # noqa: ANN001
    acks: InOrderAcks[tuple[str, int]] = InOrderAcks()
    for partition, offset in deliveries:  # duplicates stand for redeliveries after a rebalance
        acks.hold((f"t/{partition}", offset), (f"t/{partition}", offset))
    positions = list(dict.fromkeys((f"t/{p}", o) for p, o in deliveries))
    rng.shuffle(positions)
    acked: list[tuple[str, int]] = []
    for i, p in enumerate(positions):
        acked += acks.release([p])
        released = set(positions[: i + 1])
        for source in {s for s, _ in positions}:
            held = sorted(o for s, o in positions if s == source)
            done = sorted({o for s, o in acked if s == source})
            assert done == held[: len(done)], "acked offsets of a partition are a prefix of its held ones"
            first_unreleased = next((o for o in held if (source, o) not in released), None)
            assert done == [o for o in held if first_unreleased is None or o < first_unreleased]
    assert sorted(acked) == sorted((f"t/{p}", o) for p, o in deliveries) and not acks
