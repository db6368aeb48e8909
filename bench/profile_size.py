"""Profile message and stored state per user, by interest-vector encoding: ``python -m bench.profile_size``.

A user's updates (reviews and searches with random unit embeddings of ``--dims`` dimensions,
clusters and keywords as stage 1 sends them, plus orders and attributes) go through the real
update rule; the public view (the ``profiles`` message) and the stored state (the table value
and changelog record) are serialised with orjson, as Faust's json codec does, and measured:
the message in both ``STREAM_VECTOR_ENCODING`` values, the state as stored now (the decayed
interest sum as base64 float64) and as stored before (a JSON list of floats).
"""

from __future__ import annotations

import argparse
import base64
import sys

import numpy as np
import orjson

from stream.core.messages import make_update
from stream.core.profile import DAY_MS, Profile, Rules, apply_update, new_profile, public_view

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def user_profile(dims: int, texts: int, orders: int, seed: int = 0) -> Profile:
    rng = np.random.default_rng(seed)
    p, rules, offset = new_profile("u000001"), Rules(), 0
    for i in range(texts):
        emb = rng.normal(size=dims).astype(np.float32)
        offset += 1
        p = apply_update(p, make_update(
            kind="review" if i % 2 else "search", user_id="u000001", event_id=f"t{i}", ts_ms=T0 + i * DAY_MS // 3,
            source="reviews/0", offset=offset, watermark=0, data={"category": "手机", "sentiment": 0.5,
                                                                   "tokens": ["屏幕", "电池", f"词{i % 7}"]},
            embedding=emb / np.linalg.norm(emb), cluster=i % 5, keywords=["屏幕", "电池", "手机"], model_version="m1",
            topic_of=[0, 0, 1, 1, 2], topic_keywords=["屏幕", "电池"]), rules)
    for i in range(orders):
        offset += 1
        p = apply_update(p, make_update(kind="order", user_id="u000001", event_id=f"o{i}", ts_ms=T0 + i * DAY_MS,
                                        source="orders/0", offset=offset, watermark=0,
                                        data={"cents": 1299, "category": "手机", "items": 1}), rules)
    return p


def sizes(dims: int, texts: int, orders: int) -> dict[str, int]:
    p = user_profile(dims, texts, orders)
    as_of = p["last_event_ts"]
    old_state = {**p, "decayed": {**p["decayed"], "interest": np.frombuffer(
        base64.b64decode(p["decayed"]["interest"]), dtype="<f8").tolist()}}
    return {
        "message_json": len(orjson.dumps(public_view(p, as_of=as_of, updated_at_ms=0, rules=Rules(vector_encoding="json")))),
        "message_float16_base64": len(orjson.dumps(public_view(p, as_of=as_of, updated_at_ms=0, rules=Rules()))),
        "state_before": len(orjson.dumps(old_state)),
        "state_now": len(orjson.dumps(p)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_size", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 64])
    ap.add_argument("--texts", type=int, default=20, help="reviews and searches of the user")
    ap.add_argument("--orders", type=int, default=5)
    args = ap.parse_args(argv)
    print("| dims | profile message, json | profile message, float16-base64 | state before (JSON list) | state now (base64 float64) |")
    print("|---|---|---|---|---|")
    for dims in args.dims:
        s = sizes(dims, args.texts, args.orders)
        kib = {k: f"{v / 1024:.1f} KiB" for k, v in s.items()}
        print(f"| {dims} | {kib['message_json']} | {kib['message_float16_base64']} | {kib['state_before']} | {kib['state_now']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
