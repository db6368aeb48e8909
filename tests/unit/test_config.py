"""Settings that depend on the machine: the micro-batch size follows the encoder's device."""

from __future__ import annotations

import pytest

from stream.config import Settings


@pytest.mark.parametrize(("device", "expected"), [("cpu", 32), ("cuda", 256), ("cuda:0", 256)])
def test_auto_micro_batch_is_small_on_a_cpu_and_large_on_a_gpu(device: str, expected: int) -> None:
    assert Settings(batch_size=0).micro_batch(device) == expected


def test_an_explicit_micro_batch_wins_on_any_device_backlog_or_not() -> None:
    s = Settings(batch_size=100)
    assert {s.micro_batch(d) for d in ("cpu", "cuda")} == {s.backlog_batch} == {100}


def test_under_a_backlog_auto_batches_grow_to_the_gpu_size() -> None:
    assert Settings(batch_size=0).backlog_batch == 256


def test_a_negative_micro_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Settings(batch_size=-1)
