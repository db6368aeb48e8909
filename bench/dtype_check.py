"""``python -m bench.dtype_check``: do bf16 embeddings agree with fp32 ones on real reviews?

bf16 roughly doubles GPU throughput; it is only worth it if the vectors (and so clusters and
interest profiles) stay the same, which cosine similarity to the fp32 embedding measures per text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.inputs import DEFAULT_REVIEWS, encoder_inputs, passage_prefix, sample_reviews
from stream.worker.encoder import TransformerEncoder


def embeddings(model: str, texts: list[str], device: str, dtype: str) -> np.ndarray:
    return TransformerEncoder(model, device=device, dtype=dtype).encode(texts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dtype_check", description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--reviews", type=Path, default=DEFAULT_REVIEWS)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--dtype", choices=("bfloat16", "float16"), default="bfloat16")
    ap.add_argument("--min-cosine", type=float, default=0.999)
    args = ap.parse_args(argv)
    texts = encoder_inputs(sample_reviews(args.reviews, args.texts, seed=0), passage_prefix(args.model))
    reference = embeddings(args.model, texts, args.device, "float32")
    low = embeddings(args.model, texts, args.device, args.dtype)
    cosine = np.sum(reference * low, axis=1)  # rows are L2-normalised
    ok = bool(cosine.min() >= args.min_cosine)
    print(f"{Path(args.model).name}: {args.dtype} vs float32 on {len(texts)} reviews: cosine min {cosine.min():.5f} "
          f"mean {cosine.mean():.5f} -> {'OK' if ok else f'BELOW {args.min_cosine}'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
