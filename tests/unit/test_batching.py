"""Tests for stream.core.batching: every text is encoded exactly once, batches stay under the token budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.batching import arrival_batches, padded_tokens, token_budget_batches

lengths_st = st.lists(st.integers(min_value=0, max_value=600), max_size=200)
budget_st = st.integers(min_value=1, max_value=4096)


def flatten(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


# --- token_budget_batches ---------------------------------------------------------------


def test_docstring_example_and_empty_input() -> None:
    assert token_budget_batches([5, 1, 4, 2], budget=8) == [[1, 3], [2], [0]]
    assert token_budget_batches([], budget=8) == []


def test_over_long_text_gets_its_own_batch() -> None:
    batches = token_budget_batches([3, 100, 2], budget=10)
    assert [1] in batches
    assert sorted(flatten(batches)) == [0, 1, 2]


def test_equal_lengths_fill_the_budget_exactly() -> None:
    assert token_budget_batches([4] * 6, budget=8) == [[0, 1], [2, 3], [4, 5]]


@settings(max_examples=300, deadline=None)
@given(lengths=lengths_st, budget=budget_st)
def test_token_budget_batches_cover_every_index_exactly_once(lengths: list[int], budget: int) -> None:
    batches = token_budget_batches(lengths, budget)
    assert sorted(flatten(batches)) == list(range(len(lengths)))
    assert all(batches), "no empty batch"


@settings(max_examples=300, deadline=None)
@given(lengths=lengths_st, budget=budget_st)
def test_token_budget_batches_respect_the_budget(lengths: list[int], budget: int) -> None:
    for batch in token_budget_batches(lengths, budget):
        cost = len(batch) * max(lengths[i] for i in batch)
        if len(batch) > 1:
            assert cost <= budget, (batch, [lengths[i] for i in batch], budget)
        else:
            # a single text may exceed the budget only because it alone is longer than it
            assert cost <= budget or lengths[batch[0]] > budget


@settings(max_examples=300, deadline=None)
@given(lengths=lengths_st, budget=budget_st)
def test_token_budget_batches_are_sorted_by_length(lengths: list[int], budget: int) -> None:
    order = [lengths[i] for i in flatten(token_budget_batches(lengths, budget))]
    assert order == sorted(lengths)


@settings(max_examples=300, deadline=None)
@given(lengths=lengths_st, budget=budget_st)
def test_token_budget_batches_are_greedy(lengths: list[int], budget: int) -> None:
    """A batch is only closed when the next (longer) text would not fit: no needless tiny batches."""
    batches = token_budget_batches(lengths, budget)
    for batch, following in zip(batches, batches[1:]):
        longest_next = lengths[following[0]]
        assert longest_next * (len(batch) + 1) > budget


@settings(max_examples=300, deadline=None)
@given(lengths=lengths_st, budget=budget_st)
def test_padded_tokens_of_a_budget_plan_stays_within_budget_per_batch(lengths: list[int], budget: int) -> None:
    batches = token_budget_batches(lengths, budget)
    assert padded_tokens(lengths, batches) >= sum(lengths)
    for batch in batches:
        assert padded_tokens(lengths, [batch]) <= max(budget, lengths[batch[0]] if len(batch) == 1 else 0)


# --- arrival_batches ---------------------------------------------------------------------


def test_arrival_batches_docstring_example() -> None:
    assert arrival_batches(5, 2) == [[0, 1], [2, 3], [4]]
    assert arrival_batches(0, 3) == []
    assert arrival_batches(3, 10) == [[0, 1, 2]]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=0, max_value=500), size=st.integers(min_value=1, max_value=64))
def test_arrival_batches_keep_order_and_size(n: int, size: int) -> None:
    batches = arrival_batches(n, size)
    assert flatten(batches) == list(range(n))
    assert all(1 <= len(b) <= size for b in batches)
    assert all(len(b) == size for b in batches[:-1])
    assert len(batches) == -(-n // size)


# --- padded_tokens -----------------------------------------------------------------------


def test_padded_tokens_pads_each_batch_to_its_longest() -> None:
    lengths = [5, 1, 4, 2]
    assert padded_tokens(lengths, [[1, 3], [2], [0]]) == 2 * 2 + 4 + 5
    assert padded_tokens(lengths, [[0, 1, 2, 3]]) == 4 * 5
    assert padded_tokens(lengths, [[0, 1], [], [2, 3]]) == 2 * 5 + 2 * 4
    assert padded_tokens(lengths, []) == 0


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.integers(min_value=0, max_value=600), max_size=200), size=st.integers(1, 64))
def test_padded_tokens_bounds(lengths: list[int], size: int) -> None:
    batches = arrival_batches(len(lengths), size)
    padded = padded_tokens(lengths, batches)
    assert sum(lengths) <= padded <= len(lengths) * max(lengths, default=0)
    assert padded_tokens(lengths, arrival_batches(len(lengths), 1)) == sum(lengths)


@pytest.mark.parametrize("budget", [16, 64, 512])
def test_sorted_batches_pad_less_than_arrival_order_on_mixed_lengths(budget: int) -> None:
    lengths = [1, 50, 2, 49, 3, 48, 4, 47] * 4
    sorted_plan = token_budget_batches(lengths, budget)
    arrival_plan = arrival_batches(len(lengths), max(len(b) for b in sorted_plan))
    assert padded_tokens(lengths, sorted_plan) < padded_tokens(lengths, arrival_plan)
