"""What a run measures on: the model, the review texts and the machine."""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass
from pathlib import Path

from stream.core.text import clean_many
from stream.devtools.feed import load_labelled_reviews
from stream.worker.encoder import resolve_model

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REVIEWS = REPO_ROOT.parent / "shared" / "data" / "reviews_10cats.csv"
E5_DIR = Path.home() / ".cache" / "stream-models" / "multilingual-e5-small"
E5_BUILD_LOG = Path("/tmp/e5.log")


@dataclass(frozen=True)
class ModelChoice:
    """The model directory to benchmark and why it was picked (printed, so a tiny stand-in is never mistaken)."""

    path: str
    note: str


def e5_built() -> bool:
    """The e5 build writes its directory before it finishes: only a log ending well marks a usable model."""
    if not (E5_BUILD_LOG.is_file() and (E5_DIR / "config.json").is_file()):
        return False
    return "rc=0" in E5_BUILD_LOG.read_text(errors="replace")


def choose_model(requested: str, scratch: Path) -> ModelChoice:
    """The model asked for, else the locally built multilingual-e5-small, else a tiny random BERT.

    The tiny fallback keeps the command usable anywhere, but its encoder is far cheaper than a real one,
    so it understates the encoder's share of the cost; the note says so in the output.
    """
    if requested:
        return ModelChoice(requested, "given by --model / STREAM_MODEL")
    if e5_built():
        return ModelChoice(str(E5_DIR), "multilingual-e5-small built locally (/tmp/e5.log rc=0)")
    from stream.devtools.tinymodel import build_tiny_bert

    path = build_tiny_bert(scratch / "tiny-bert")
    return ModelChoice(
        str(path), "TINY random-weight BERT (no real encoder available): encoder numbers are NOT representative"
    )


def passage_prefix(model: str) -> str:
    """e5 models are trained with ``passage: `` before documents; other models get the text as is."""
    return "passage: " if "e5" in resolve_model(model).name.lower() else ""


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
