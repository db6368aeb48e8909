"""What a run measures on: the model, the review texts and the machine."""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass
from pathlib import Path

from stream.core.text import clean_many
from stream.devtools.feed import load_labelled_reviews
from stream.devtools.e5model import DEFAULT_DIR as E5_DIR
from stream.model_meta import model_prefixes, read_meta

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REVIEWS = REPO_ROOT.parent / "shared" / "data" / "reviews_10cats.csv"


@dataclass(frozen=True)
class ModelChoice:
    """The model directory to benchmark and why it was picked (printed, so a tiny stand-in is never mistaken)."""

    path: str
    note: str


def choose_model(requested: str, scratch: Path) -> ModelChoice:
    """The model asked for, else the locally built multilingual-e5-small, else a tiny random BERT.

    The tiny fallback keeps the command usable anywhere, but its encoder is far cheaper than a real one,
    so it understates the encoder's share of the cost; the note says so in the output.
    """
    if requested:
        return ModelChoice(requested, "given by --model / STREAM_MODEL")
    if read_meta(E5_DIR):  # written last by `stream model e5`, once the model passed its checks
        return ModelChoice(str(E5_DIR), "multilingual-e5-small built by `stream model e5`")
    from stream.devtools.tinymodel import build_tiny_bert

    path = build_tiny_bert(scratch / "tiny-bert")
    return ModelChoice(
        str(path), "TINY random-weight BERT (no real encoder available): encoder numbers are NOT representative"
    )


def passage_prefix(model: str) -> str:
    """What the service puts before reviews for ``model``."""
    return model_prefixes(model).review


def sample_reviews(path: Path, n: int, seed: int) -> list[str]:
    """``n`` review texts drawn without replacement, in a random (arrival-like) order."""
    texts = [text for text, _, _ in load_labelled_reviews(path)]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def encoder_inputs(texts: list[str], prefix: str) -> list[str]:
    """Exactly what the pipeline hands the encoder: cleaned text behind the model's prefix."""
    return [prefix + c.text for c in clean_many(texts)]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe_machine(device: str, dtype: str, model_name: str) -> dict[str, object]:
    """Enough context to compare runs across machines: absolute numbers mean nothing without it."""
    import torch
    import transformers

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "dtype": dtype,
        "model": model_name,
    }
