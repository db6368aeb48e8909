"""Raw encoder throughput under three batch plans: the pipeline's token budget and two naive baselines.

Token ids are computed once up front, so only the model (padding, forward pass, pooling) is timed;
tokenization is part of the per-event CPU breakdown instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from stream.core.batching import arrival_batches
from stream.worker.encoder import TransformerEncoder

Plan = Callable[[list[int]], list[list[int]]]


@dataclass(frozen=True)
class EncoderRun:
    """One timed ``encode_ids`` call over all texts."""

    plan: str
    texts: int
    tokens: int
    padded_tokens: int
    batches: int
    seconds: float
    cpu_seconds: float
    texts_per_s: float
    tokens_per_s: float
    useful_share: float  # tokens / padded tokens: the share of the model's work that was not padding

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def plans(arrival_batch: int) -> dict[str, Plan | None]:
    """Plan per name; ``None`` is the encoder's own token-budget policy, i.e. what the pipeline runs."""
    return {
        "token_budget": None,
        "arrival_order": lambda lengths: arrival_batches(len(lengths), arrival_batch),
        "one_at_a_time": lambda lengths: arrival_batches(len(lengths), 1),
    }


def synchronize(device: str) -> None:
    """CUDA launches are asynchronous: without a sync the clock would stop before the GPU does."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def timed_encode(
    encoder: TransformerEncoder, ids: Sequence[Sequence[int]], name: str, plan: Plan | None
) -> tuple[np.ndarray, EncoderRun]:
    synchronize(encoder.device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = encoder.encode_ids(ids, plan)
    synchronize(encoder.device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    s = encoder.last_stats
    run = EncoderRun(
        plan=name,
        texts=s.texts,
        tokens=s.tokens,
        padded_tokens=s.padded_tokens,
        batches=s.batches,
        seconds=wall,
        cpu_seconds=cpu,
        texts_per_s=s.texts / wall,
        tokens_per_s=s.tokens / wall,
        useful_share=s.tokens / s.padded_tokens if s.padded_tokens else 1.0,
    )
    return out, run


def measure_encoder(
    encoder: TransformerEncoder, texts: Sequence[str], arrival_batch: int
) -> tuple[np.ndarray, dict[str, EncoderRun]]:
    """Embeddings (token-budget run) and one timed run per plan, after a warm-up that pays one-off setup costs."""
    ids = encoder.tokenize(texts)
    encoder.encode_ids(ids[:arrival_batch])
    runs: dict[str, EncoderRun] = {}
    embeddings = np.empty((0, encoder.dim), dtype=np.float32)
    for name, plan in plans(arrival_batch).items():
        out, runs[name] = timed_encode(encoder, ids, name, plan)
        if plan is None:
            embeddings = out
    return embeddings, runs
