"""Where the model owner becomes the bottleneck: ``python -m bench.owner``.

The owner merges every worker's learning messages on one core, so its cost bounds the texts
per second the whole application can learn from. This measures, in one run on this machine,

* the owner's CPU per learning message (JSON decode, ``partial_fit`` of the weighted means,
  keyword counts) for batch sizes and parts per message (a worker's batch holds texts of the
  input partitions it owns: one part each);
* the cost of one published version (describe, encode, compress) and its size, of reading it
  (every worker does), and of the owner's whole state written every ``--state-interval``;

(CPU time of this process, so that other load on the machine does not inflate it)

and derives a scaling table: for W GPU workers encoding ``--gpu-texts-per-second`` each, over P
input partitions, the owner's messages per second and the share of its core they need.
Embeddings are random unit vectors of the encoder's dimension (the cost does not depend on
their meaning); tokens are drawn from a Zipf-like vocabulary like review words.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import orjson

from stream.core.clustering import OnlineClusterer
from stream.core.learning import Learner, Sample
from stream.core.model_owner import TOPICS_EVERY_VERSIONS, ModelOwner, run_locally
from stream.core.shared_model import ModelView, decode_snapshot, encode_snapshot

ENCODER = "bench"


def _samples(rng: np.random.Generator, n: int, dim: int, partitions: int, start: int, vocab: int) -> list[Sample]:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    words = rng.zipf(1.3, size=(n, 20)) % vocab
    return [Sample(f"reviews/{i % partitions}", start + i, start + i, x[i], [f"w{w}" for w in words[i]],
                   text=f"snippet {i}", user=f"u{rng.integers(10_000)}") for i in range(n)]


def fitted_owner(k: int, dim: int, half_life: float, rng: np.random.Generator) -> tuple[ModelOwner, Learner]:
    owner = ModelOwner(OnlineClusterer(k=k, warmup=50 * k, seed=0, half_life_events=half_life), encoder_version=ENCODER,
                       topics=10)
    learner = Learner(ENCODER)
    for start in range(0, 50 * k, 500):
        run_locally(owner, learner, _samples(rng, min(500, 50 * k - start), dim, 1, start, 20_000), force=True)
    for start in range(50 * k, 50 * k + 20_000, 500):  # a vocabulary at its pruned size, as after hours of traffic
        run_locally(owner, learner, _samples(rng, 500, dim, 1, start, 20_000))
    return owner, learner


def message_cost(owner: ModelOwner, learner: Learner, rng: np.random.Generator, *, texts: int, parts: int,
                 repeats: int) -> float:
    """Seconds of owner CPU per learning message of ``texts`` texts in ``parts`` partitions (decode included)."""
    dim = owner.clusterer.centers.shape[1]
    records = []
    for _ in range(repeats):
        offset = max(owner.merged.values(), default=10_000_000) + 1 + len(records) * texts
        step = learner.step(_samples(rng, texts, dim, parts, offset, 20_000))
        records += [orjson.dumps(m) for m in step.messages]
    began = time.process_time()
    for i, record in enumerate(records):
        owner.receive(orjson.loads(record), position=owner.position + 1 + i)
    return (time.process_time() - began) / len(records)


def version_cost(owner: ModelOwner, repeats: int = TOPICS_EVERY_VERSIONS,
                 states: int = 5) -> dict[str, tuple[float, int]]:
    """CPU seconds and bytes of: one version on the model topic (owner side), reading it (every
    worker's side), averaged over a cycle of versions (keywords and topics are re-ranked every few
    versions only), and one whole state on the state topic (owner side)."""
    costs: dict[str, list[float]] = {"version": [], "follower": [], "state": []}
    for _ in range(repeats):
        began = time.process_time()
        view = owner.publish()
        record = encode_snapshot(view.to_snapshot(owner.position))
        read = time.process_time()
        ModelView.from_snapshot(decode_snapshot(record))
        costs["version"].append(read - began)
        costs["follower"].append(time.process_time() - read)
    for _ in range(states):
        began = time.process_time()
        state = encode_snapshot(owner.snapshot(view))
        costs["state"].append(time.process_time() - began)
    sizes = {"version": len(record), "follower": len(record), "state": len(state)}
    return {what: (sum(times) / len(times), sizes[what]) for what, times in costs.items()}


def scaling_table(costs: dict[tuple[int, int], float], publish_s: float, publish_per_s: float,
                  gpu_texts: float, batch: int, workers: Sequence[int], partitions: Sequence[int]) -> list[str]:
    rows = ["| workers | input partitions | parts per message | owner messages/s | owner core busy | texts/s learned |",
            "|---:|---:|---:|---:|---:|---:|"]
    for p in partitions:
        for w in workers:
            parts = max(1, min(batch, -(-p // w)))
            per_message = _interpolate(costs, batch, parts)
            rate = w * gpu_texts / batch
            busy = rate * per_message + publish_per_s * publish_s
            learned = min(w * gpu_texts, w * gpu_texts / max(busy, 1e-9))
            rows.append(f"| {w} | {p} | {parts} | {rate:,.0f} | {busy:.0%} | {learned:,.0f} |")
    return rows


def _interpolate(costs: dict[tuple[int, int], float], texts: int, parts: int) -> float:
    """Cost per message for ``parts`` parts, linear between the measured part counts (same batch size)."""
    measured = sorted(p for t, p in costs if t == texts)
    lo = max([p for p in measured if p <= parts], default=measured[0])
    hi = min([p for p in measured if p >= parts], default=measured[-1])
    if lo == hi:
        return costs[(texts, lo)] * (parts / lo if parts > hi else 1.0)
    f = (parts - lo) / (hi - lo)
    return costs[(texts, lo)] * (1 - f) + costs[(texts, hi)] * f


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.owner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=40)
    ap.add_argument("--dim", type=int, default=384, help="embedding dimension (multilingual-e5-small: 384)")
    ap.add_argument("--half-life-events", type=float, default=0.0, help="decay (costs a pass over the keyword counts)")
    ap.add_argument("--batch", type=int, default=256, help="texts per worker micro-batch at saturation")
    ap.add_argument("--gpu-texts-per-second", type=float, default=3000.0,
                    help="texts/s one GPU worker encodes (an assumption: no GPU was measured here)")
    ap.add_argument("--publish-interval", type=float, default=0.5, help="STREAM_MODEL_PUBLISH_INTERVAL")
    ap.add_argument("--state-interval", type=float, default=10.0, help="STREAM_MODEL_STATE_INTERVAL")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    owner, learner = fitted_owner(args.clusters, args.dim, args.half_life_events, rng)
    costs = {}
    for texts in sorted({32, args.batch}):
        for parts in (1, 10, 34, 100):
            if parts <= texts:
                costs[(texts, parts)] = message_cost(owner, learner, rng, texts=texts, parts=parts, repeats=args.repeats)
    versions = version_cost(owner)
    publish_s = versions["version"][0] + versions["state"][0] * args.publish_interval / args.state_interval
    print(f"owner CPU per learning message (k={args.clusters}, dim={args.dim}, half-life {args.half_life_events:g}):")
    print("| texts per message | parts | ms per message | µs per text |")
    print("|---:|---:|---:|---:|")
    for (texts, parts), s in sorted(costs.items()):
        print(f"| {texts} | {parts} | {s * 1000:.2f} | {s / texts * 1e6:.1f} |")
    print(f"\nper published version (at most {1 / args.publish_interval:g} per second), CPU and compressed size:")
    print("| record | ms CPU | KiB | per second of owner/worker CPU |")
    print("|---|---:|---:|---:|")
    for what, label, every in (("version", "version on the model topic (owner)", args.publish_interval),
                               ("follower", "reading that version (every worker)", args.publish_interval),
                               ("state", "whole state on the state topic (owner)", args.state_interval)):
        seconds, size = versions[what]
        print(f"| {label} | {seconds * 1000:.1f} | {size / 1024:.0f} | {seconds / every * 1000:.0f} ms/s |")
    print(f"\nscaling (each worker {args.gpu_texts_per_second:,.0f} texts/s in batches of {args.batch}; "
          "'owner core busy' over 100% means the owner is the bottleneck):")
    for row in scaling_table(costs, publish_s, 1 / args.publish_interval, args.gpu_texts_per_second, args.batch,
                             (1, 3, 10), (10, 100)):
        print(row)


if __name__ == "__main__":
    main()
