#!/usr/bin/env bash
# One prepared check for a GPU machine (a few minutes): install, CUDA-relevant unit tests, the encoder and
# CPU sections of the benchmark for a BERT-base-sized random model and the small/real model in bf16 and fp32,
# and bf16-vs-fp32 embedding agreement (cosine >= 0.999).
# Run from the repository root: bash bench/gpu_check.sh
# The end-to-end section is skipped: it needs the Kafka jars that Maven resolves once from the network.
# Environment: REVIEWS (default ../shared/data/reviews_10cats.csv), SMALL_MODEL (default the built e5;
# a tiny random BERT when absent), OUT (default $OUT or bench/results), TEXTS (default 2048), EVENTS (default 2000).
set -uo pipefail

REVIEWS=${REVIEWS:-../shared/data/reviews_10cats.csv}
SMALL_MODEL=${SMALL_MODEL:-$HOME/.cache/stream-models/multilingual-e5-small}
RESULTS=${OUT:-bench/results}
TEXTS=${TEXTS:-2048}
EVENTS=${EVENTS:-2000}
MODELS=$(mktemp -d)
failures=0

step() { echo; echo "=== $* ==="; }
run() { "$@" || { echo "FAILED ($?): $*"; failures=$((failures + 1)); }; }

if [[ ! -f $REVIEWS ]]; then
  echo "review data not found at $REVIEWS; set REVIEWS=/path/to/reviews_10cats.csv" >&2
  exit 2
fi
mkdir -p "$RESULTS"

step "install"
pip install -q -e '.[test]' || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "bf16", torch.cuda.is_bf16_supported())'

step "unit tests"
run pytest tests/unit -q -p no:cacheprovider

step "models"
python -c "from stream.tinymodel import build_tiny_bert as b; b('$MODELS/bert-base-random', hidden=768, layers=12, heads=12)" || exit 1
if [[ ! -f $SMALL_MODEL/config.json ]]; then
  echo "no real model at $SMALL_MODEL: using the tiny random BERT as the small model"
  SMALL_MODEL=$MODELS/tiny-bert
  python -c "from stream.tinymodel import build_tiny_bert as b; b('$SMALL_MODEL')" || exit 1
fi

for model in "$MODELS/bert-base-random" "$SMALL_MODEL"; do
  for dtype in bfloat16 float32; do
    step "benchmark $(basename "$model") $dtype"
    run python -m bench --device cuda --dtype "$dtype" --model "$model" --reviews "$REVIEWS" --skip-e2e \
      --texts "$TEXTS" --events "$EVENTS" --out "$RESULTS/gpu-$(basename "$model")-$dtype.json"
  done
  step "bf16 vs fp32 embeddings $(basename "$model")"
  run python -m bench.dtype_check --device cuda --model "$model" --reviews "$REVIEWS" --texts 512
done

rm -rf "$MODELS"
echo
echo "gpu_check: $failures failed step(s)"
exit $((failures > 0))
