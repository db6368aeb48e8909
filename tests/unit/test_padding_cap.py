"""Encoder batch plans under a padding cap: every text once, within budget, padding bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.core.batching import padded_tokens, token_budget_batches


@given(st.lists(st.integers(1, 300), max_size=80), st.integers(64, 4096), st.floats(0.0, 1.0))
def test_every_text_once_within_budget_and_padding_cap(lengths: list[int], budget: int, cap: float) -> None:
    batches = token_budget_batches(lengths, budget, max_padding=cap)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        if len(b) > 1:
            padded = padded_tokens(lengths, [b])
            assert padded <= budget
            assert padded - sum(lengths[i] for i in b) <= cap * padded + 1e-9


def test_a_small_mixed_micro_batch_is_split_instead_of_padded_to_its_longest_text() -> None:
    lengths = [20, 120, 22, 118, 25, 21]
    uncapped = token_budget_batches(lengths, 4096)
    capped = token_budget_batches(lengths, 4096, max_padding=0.2)
    assert len(uncapped) == 1 and padded_tokens(lengths, uncapped) == 720
    assert capped == [[0, 5, 2, 4], [3, 1]] and padded_tokens(lengths, capped) == 340
