"""Encoder batch plans: which texts go through the model together.

On a CPU, padding dominates the cost of a transformer forward pass, so texts are sorted
by token length and cut into batches under a token budget (padding included), the way
text-embeddings-inference does; callers restore event order from the returned indices.
"""

from __future__ import annotations

from collections.abc import Sequence


def token_budget_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices grouped by ascending length so that ``len(batch) * max_len <= budget``.

    A text longer than the budget still gets a batch of its own.

    >>> token_budget_batches([5, 1, 4, 2], budget=8)
    [[1, 3], [2], [0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]
        if current and longest * (len(current) + 1) > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def arrival_batches(n: int, size: int) -> list[list[int]]:
    """Fixed-size batches in arrival order: the naive baseline the benchmark compares against.

    >>> arrival_batches(5, 2)
    [[0, 1], [2, 3], [4]]
    """
    return [list(range(start, min(start + size, n))) for start in range(0, n, size)]


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens the model really processes (each batch padded to its longest text)."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
