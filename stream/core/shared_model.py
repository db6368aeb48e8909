"""The interest model as every worker sees it: one versioned view per application, and its wire format.

One owner (:mod:`stream.core.model_owner`) learns the clusters from what all workers send
and publishes each new version on the compacted model topic; every worker assigns texts with
the latest :class:`ModelView` it has read. A view carries what stage 1 needs to label a text
and explain its cluster (centres, readable keywords, coarse topics, snippets) and which input
positions its learning already covers, so a worker never sends the same text twice.

A snapshot is plain JSON (arrays as base64), compressed: workers read topic bytes, so nothing
here unpickles, and a malformed message is refused with :class:`ModelFormatError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from stream.core.clustering import decode_array, encode_array

WIRE_FORMAT = 1
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024  # decompressed: a bound against a hostile or corrupt message


class ModelFormatError(ValueError):
    """Bytes on the model topic that are not a model snapshot this version can read."""


@dataclass(frozen=True)
class ModelView:
    """One published version of the application's interest model (read-only)."""

    encoder_version: str
    lineage: str
    number: int  # publish counter of the owner: newer versions of one lineage have larger numbers
    centers: np.ndarray  # (k, dim) float32
    sizes: np.ndarray  # (k,) decayed learning counts
    seen: int  # texts learned since the warm start (not decayed)
    merged: Mapping[str, int]  # "topic/partition" -> last input offset whose learning this version includes
    keywords: Mapping[int, list[str]] = field(default_factory=dict)  # cluster -> readable keywords, best first
    topic_of: Mapping[int, int] = field(default_factory=dict)  # cluster -> coarse topic
    topic_keywords: Mapping[int, list[str]] = field(default_factory=dict)
    generic: frozenset[int] = frozenset()  # clusters that say how rather than what
    examples: Mapping[int, list[str]] = field(default_factory=dict)  # cluster -> snippets every word of which
    # at least MIN_KEYWORD_USERS users wrote

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    @property
    def version(self) -> str:
        """The clustering part of a profile's ``model_version``: one lineage per application."""
        return f"kmeans-k{self.k}-{self.lineage}#{self.number}"

    def newer_than(self, other: ModelView | None) -> bool:
        """Whether a worker holding ``other`` should switch to this view (a new lineage always wins)."""
        return other is None or other.lineage != self.lineage or self.number > other.number

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest cluster by cosine similarity, and that similarity, per row."""
        x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
        unit = self.centers / np.maximum(np.linalg.norm(self.centers, axis=1, keepdims=True), 1e-12)
        sims = x @ unit.T
        labels = np.argmax(sims, axis=1)
        return labels.astype(np.int64), sims[np.arange(len(x)), labels]

    def derived(self) -> dict[str, Any]:
        """The readable part as JSON-safe data (cluster ids become strings)."""
        return {
            "keywords": {str(c): list(v) for c, v in self.keywords.items()},
            "topic_of": {str(c): int(t) for c, t in self.topic_of.items()},
            "topic_keywords": {str(t): list(v) for t, v in self.topic_keywords.items()},
            "generic": sorted(self.generic),
            "examples": {str(c): list(v) for c, v in self.examples.items()},
        }

    def to_snapshot(self, position: int) -> dict[str, Any]:
        """The model topic's record of this view (``position``: the learning-topic offset it covers).

        Only what :meth:`from_snapshot` reads: every worker decodes each version, twice a second,
        so the owner's keyword counts and snippet candidates go to the state topic instead."""
        return {
            "encoder_version": self.encoder_version, "number": self.number, "position": position,
            "merged": dict(self.merged),
            "clusterer": {"k": self.k, "lineage": self.lineage, "seen": self.seen,
                          "centers": encode_array(self.centers), "counts": encode_array(self.sizes)},
            "view": self.derived(),
        }

    @staticmethod
    def from_snapshot(snapshot: Mapping[str, Any]) -> ModelView:
        """The view inside a model-topic record (:meth:`to_snapshot`) or an owner's whole state
        (:meth:`stream.core.model_owner.ModelOwner.snapshot`)."""
        try:
            state = snapshot["clusterer"]
            centers = decode_array(state["centers"], np.float32).reshape(int(state["k"]), -1)
            sizes = decode_array(state["counts"], np.float32)
            derived = snapshot["view"]
            return ModelView(
                encoder_version=str(snapshot["encoder_version"]),
                lineage=str(state["lineage"]),
                number=int(snapshot["number"]),
                centers=centers,
                sizes=sizes,
                seen=int(state["seen"]),
                merged={str(s): int(o) for s, o in snapshot["merged"].items()},
                keywords={int(c): [str(w) for w in v] for c, v in derived["keywords"].items()},
                topic_of={int(c): int(t) for c, t in derived["topic_of"].items()},
                topic_keywords={int(t): [str(w) for w in v] for t, v in derived["topic_keywords"].items()},
                generic=frozenset(int(c) for c in derived["generic"]),
                examples={int(c): [str(e) for e in v] for c, v in derived["examples"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"not a model snapshot: {exc!r}") from exc


def encode_snapshot(snapshot: Mapping[str, Any]) -> bytes:
    """Compressed JSON, the value of the model topic's record."""
    return zlib.compress(orjson.dumps({**snapshot, "wire": WIRE_FORMAT}), 1)  # level 1: a third of level 6's time


def decode_snapshot(data: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_snapshot`; :class:`ModelFormatError` for anything else."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, MAX_SNAPSHOT_BYTES)
        if inflater.unconsumed_tail:
            raise ModelFormatError(f"model snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
        snapshot = orjson.loads(raw)
    except (zlib.error, orjson.JSONDecodeError, TypeError) as exc:
        raise ModelFormatError(f"model topic record is not a compressed JSON snapshot: {exc}") from exc
    if not isinstance(snapshot, dict) or snapshot.get("wire") != WIRE_FORMAT:
        raise ModelFormatError(f"model snapshot wire format {snapshot.get('wire') if isinstance(snapshot, dict) else None}"
                               f" != {WIRE_FORMAT}")
    return snapshot


# --------------------------------------------------------------------------- what workers send to the owner
#
# One record per micro-batch on the single-partition learning topic, split into parts per input
# partition with the first and last offset they cover: the owner merges a part at most once
# ("topic/partition" -> last merged offset), whichever worker sends it.
#
#   warmup  {"type": "warmup", "encoder", "parts": [{"source", "first", "last", "samples": [
#             {"offset", "ts", "vec", "tokens", "tag", "text"}]}]}        texts held before the first fit
#   learn   {"type": "learn", "encoder", "model", "parts": [{"source", "first", "last", "clusters": [c],
#             "sums": base64 float32 (len(clusters) x dim), "counts": [n], "texts": [[c, tokens, tag]],
#             "examples": [[c, similarity, text, tag, tokens]]}]}           sufficient statistics of a batch
#   forget  {"type": "forget", "tag", "terms": {cluster: {token: count}}, "samples": [{"source", "offset",
#             "vec", "tokens"}], "ref": {"source", "offset", "index"}}
#                                                          a forgotten user's contributions (samples: warm-up
#                                                          texts the worker dropped before they were published;
#                                                          ref: the request's place in stage 2's input)
#
# ``tag`` is :func:`stream.core.keywords.user_tag` of the pseudonymous user id: enough to count
# distinct writers, nothing to read back. ``text`` is the masked snippet of a text.

LEARN, WARMUP, FORGET = "learn", "warmup", "forget"


class ForgetRef(NamedTuple):
    """Where stage 2 read a forget request: message ``index`` of the record at ``offset`` of ``source``
    ("topic/partition"). Stage 2 reads a partition in order and sends a request's words before it moves
    on, so per source the refs reach the owner in increasing order, and a redelivery repeats one."""

    source: str
    offset: int
    index: int


def covered_positions(message: Mapping[str, Any]) -> dict[str, int]:
    """Per input partition, the last offset whose learning ``message`` carries (empty for a forget)."""
    out: dict[str, int] = {}
    for part in message.get("parts") or ():
        try:
            source, last = str(part["source"]), int(part["last"])
        except (KeyError, TypeError, ValueError):
            continue
        out[source] = max(out.get(source, -1), last)
    return out
