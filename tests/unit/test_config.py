"""Settings that depend on the machine: the micro-batch size follows the encoder's device."""

from __future__ import annotations

import pytest

from stream.config import Settings


@pytest.mark.parametrize(("device", "expected"), [("cpu", 32), ("cuda", 256), ("cuda:0", 256)])
def test_auto_micro_batch_is_small_on_a_cpu_and_large_on_a_gpu(device: str, expected: int) -> None:
    assert Settings(batch_size=0).micro_batch(device) == expected


def test_an_explicit_micro_batch_wins_on_any_device() -> None:
    assert {Settings(batch_size=100).micro_batch(d) for d in ("cpu", "cuda")} == {100}


def test_a_negative_micro_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Settings(batch_size=-1)
