"""Sentence embeddings from a local transformers model.

Only local files are ever read (``local_files_only``): a model is a directory or a name
already in the user's Hugging Face cache. Anything else fails with :class:`ModelNotFound`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from stream.core.batching import token_budget_batches

if TYPE_CHECKING:
    import torch

    from stream.config import Settings


class ModelNotFound(RuntimeError):
    """The configured model is not available locally."""


class Encoder(Protocol):
    """What the pipeline needs of an encoder: L2-normalised float32 rows, one per text."""

    dim: int
    version: str
    device: str  # "cpu" or "cuda": sets the micro-batch size (Settings.micro_batch)

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model(model: str) -> Path:
    """Local directory of ``model`` (a path, or a name in the local Hugging Face cache)."""
    if not model:
        raise ModelNotFound(
            "no model configured: set STREAM_MODEL to a local model directory or a model name in your "
            "Hugging Face cache (e.g. a local copy of BAAI/bge-small-zh-v1.5), or build a test model with "
            "`stream model tiny PATH`"
        )
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{path} has no config.json: not a transformers model directory")
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:  # the hub client raises several unrelated types for "not cached"
        raise ModelNotFound(
            f"model {model!r} is neither a directory nor in the local Hugging Face cache; nothing is downloaded "
            f"at run time. Copy the model to a directory and point STREAM_MODEL at it. ({type(exc).__name__})"
        ) from exc


def model_fingerprint(path: Path) -> str:
    """Short digest of config, tokenizer and all weights: any change to the model changes the version.

    Hashing every byte costs about a second per GB at start-up, once; a partial hash would
    let a fine-tune that kept its embeddings pass as the old model.
    """
    digest = hashlib.sha256()
    files = ["config.json", "tokenizer.json", "vocab.txt", "sentencepiece.bpe.model"]
    weights = sorted(p.name for p in [*path.glob("*.safetensors"), *path.glob("*.bin")])
    for name in [*files, *weights]:
        file = path / name
        if not file.is_file():
            continue
        digest.update(name.encode())
        with file.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:10]


def encoder_version(path: Path, pooling: str) -> str:
    """The one version string of an encoder: model directory name, content fingerprint, pooling."""
    return f"{path.name}@{model_fingerprint(path)}/{pooling}"


def choose_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("STREAM_DEVICE=cuda but torch sees no CUDA device")
    return device


def choose_dtype(dtype: str, device: str) -> torch.dtype:
    import torch

    if dtype == "auto":
        if device != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, dtype)


@dataclass
class EncodeStats:
    """What one ``encode`` call cost, for benchmarks and metrics."""

    texts: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0


class TransformerEncoder:
    """Mean- or CLS-pooled embeddings, batched by token length under a token budget and a padding cap."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        pooling: str = "mean",
        max_tokens: int = 256,
        batch_tokens: int = 4096,
        batch_padding: float = 1.0,
        torch_threads: int = 0,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model(model)
        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.device = choose_device(device)
        self.dtype = choose_dtype(dtype, self.device)
        self.pooling = pooling
        self.max_tokens = max_tokens
        self.batch_tokens = batch_tokens
        self.batch_padding = batch_padding
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(
            path, local_files_only=True, dtype=self.dtype, attn_implementation="sdpa"
        ).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        self.name = path.name
        self.version = encoder_version(path, pooling)
        self.last_stats = EncodeStats()
        self._lock = threading.Lock()

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated, unpadded."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens, padding=False)
        return enc["input_ids"]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_ids(self.tokenize(texts))

    def encode_ids(
        self, ids: Sequence[Sequence[int]], plan: Callable[[list[int]], list[list[int]]] | None = None
    ) -> np.ndarray:
        """Embeddings in input order; ``plan`` (default: token-budget batches) groups the texts."""
        import torch

        lengths = [len(x) for x in ids]
        batches = plan(lengths) if plan else token_budget_batches(lengths, self.batch_tokens, self.batch_padding)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        pad_id = self.tokenizer.pad_token_id or 0
        stats = EncodeStats(texts=len(ids), tokens=sum(lengths), batches=len(batches))
        with self._lock, torch.inference_mode():
            for batch in batches:
                width = max(lengths[i] for i in batch)
                stats.padded_tokens += width * len(batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : lengths[i]] = torch.as_tensor(ids[i], dtype=torch.long)
                    mask[row, : lengths[i]] = 1
                if self.device == "cuda":
                    input_ids = input_ids.pin_memory().to(self.device, non_blocking=True)
                    mask = mask.pin_memory().to(self.device, non_blocking=True)
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                pooled = self._pool(hidden, mask)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[batch] = pooled.cpu().numpy()
        self.last_stats = stats
        return out

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = hidden.float()
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def load_encoder(settings: Settings) -> TransformerEncoder:
    """The encoder the service runs, as configured by ``settings``."""
    return TransformerEncoder(
        settings.model,
        device=settings.device,
        dtype=settings.dtype,
        pooling=settings.pooling,
        max_tokens=settings.max_tokens,
        batch_tokens=settings.batch_tokens,
        batch_padding=settings.batch_padding,
        torch_threads=settings.torch_threads,
    )
