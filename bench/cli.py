"""Command line: ``python -m bench [options]`` runs every section once and writes one JSON result."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench.cpu_costs import measure_cpu_costs
from bench.e2e import PREWARM_EVENTS, E2EConfig, run_e2e
from bench.encoder_bench import measure_encoder
from bench.inputs import (
    DEFAULT_REVIEWS,
    REPO_ROOT,
    ModelChoice,
    choose_model,
    describe_machine,
    encoder_inputs,
    passage_prefix,
    sample_reviews,
)
from bench.report import markdown, ratios
from stream.config import Settings
from stream.devtools.feed import reviews_feed
from stream.worker.app import load_encoder

CLUSTERS = 10
WARMUP = 200  # small, so the pre-warm fits the clusterer within a few seconds


def parser(defaults: Settings) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--reviews", type=Path, default=DEFAULT_REVIEWS, help="labelled review CSV (cat,label,review)")
    ap.add_argument("--model", default=os.environ.get("STREAM_MODEL", ""),
                    help="model directory (default $STREAM_MODEL, else the built e5, else a tiny random BERT)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default=defaults.device)
    ap.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default=defaults.dtype)
    ap.add_argument("--batch-tokens", type=int, default=defaults.batch_tokens,
                    help="the pipeline's token budget per encoder batch")
    ap.add_argument("--arrival-batch", type=int, default=32, help="batch size of the arrival-order baseline")
    ap.add_argument("--texts", type=int, default=512, help="review texts for the encoder section")
    ap.add_argument("--events", type=int, default=2000,
                    help=f"review events for the CPU breakdown and saturation (at least {PREWARM_EVENTS})")
    ap.add_argument("--latency-seconds", type=float, default=20.0, help="duration of the fixed-load latency phase")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-e2e", action="store_true", help="no broker or worker: encoder and CPU sections only")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "latest.json")
    return ap


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def pipeline_settings(defaults: Settings, args: argparse.Namespace, model: str) -> Settings:
    """One Settings for every section, so the encoder, the CPU breakdown and the worker run the same configuration."""
    return defaults.model_copy(update={
        "model": model, "device": args.device, "dtype": args.dtype, "batch_tokens": args.batch_tokens,
        "review_prefix": passage_prefix(model), "clusters": CLUSTERS, "warmup": WARMUP,
    })


def run(args: argparse.Namespace, settings: Settings, choice: ModelChoice) -> dict[str, Any]:
    progress(f"model {choice.path} ({choice.note})")
    encoder = load_encoder(settings)
    progress(f"encoder: {args.texts} texts, 3 batch plans")
    texts = encoder_inputs(sample_reviews(args.reviews, args.texts, args.seed), settings.review_prefix)
    embeddings, runs = measure_encoder(encoder, texts, args.arrival_batch)
    progress(f"CPU breakdown: {args.events} events")
    feed = reviews_feed(args.reviews, max(1, args.events // 5), args.events, seed=args.seed, kinds=("review",))
    stages, stage1 = measure_cpu_costs([orjson.dumps(fe.event) for fe in feed], encoder, embeddings, settings)
    e2e = None
    if not args.skip_e2e:
        e2e = run_e2e(E2EConfig(args.reviews, settings, args.events, args.latency_seconds, args.seed), progress).to_dict()
    encoder_runs = {name: r.to_dict() for name, r in runs.items()}
    return {
        "machine": describe_machine(encoder.device, str(encoder.dtype).removeprefix("torch."), encoder.name),
        "model": {"path": choice.path, "note": choice.note, "version": encoder.version,
                  "prefix": settings.review_prefix, "dim": encoder.dim},
        "config": {"texts": len(texts), "events": args.events, "batch_tokens": settings.batch_tokens,
                   "arrival_batch": args.arrival_batch, "max_tokens": settings.max_tokens,
                   "batch_size": settings.micro_batch(encoder.device), "clusters": settings.clusters, "seed": args.seed},
        "encoder": encoder_runs,
        "cpu_us_per_event": [c.to_dict() for c in stages],
        "stage1_without_model_us_per_event": stage1.to_dict(),
        "e2e": e2e,
        "ratios": ratios(encoder_runs, e2e),
    }


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    ap = parser(defaults)
    args = ap.parse_args(argv)
    if args.events < PREWARM_EVENTS:
        ap.error(f"--events must be at least {PREWARM_EVENTS} (the clustering warm-up must fit in it)")
    with tempfile.TemporaryDirectory(prefix="bench-model-") as scratch:  # a tiny fallback model lives only this long
        choice = choose_model(args.model, Path(scratch))
        result = run(args, pipeline_settings(defaults, args, choice.path), choice)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown(result))
    progress(f"wrote {args.out}")
    return 0
