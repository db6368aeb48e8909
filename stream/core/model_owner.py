"""The owner of the application's interest model: merges what every worker learned, in one order.

Exactly one owner runs per application (the worker that Kafka's group protocol gives the one
partition of the learning topic); it reads the workers' messages
(:mod:`stream.core.shared_model`) in topic order and

* buffers warm-up samples until there are ``warmup`` of them (or, after ``warmup_max_wait``,
  at least k), then fits the first centres once for the whole application;
* merges each batch's per-cluster sums and counts through ``MiniBatchKMeans.partial_fit``
  (:meth:`~stream.core.clustering.OnlineClusterer.learn_summary`) and the batch's tokens into
  the keyword counts, applying decay once, here;
* merges a part of a message only if its offsets are beyond what was merged for that input
  partition, so a message sent twice (a worker crashed before acking its input) counts once;
* keeps snippets whose every word at least ``MIN_KEYWORD_USERS`` users wrote, and takes a
  forgotten user's words, snippets and writer tag out.

Its whole state is :meth:`ModelOwner.snapshot` (written to the compacted state topic every few
seconds; each version on the model topic is only :meth:`ModelView.to_snapshot`), so a new owner
continues from the last state plus the learning messages after it. No I/O here.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.core.clustering import OnlineClusterer, decode_array
from stream.core.coarse import group_clusters, topic_terms
from stream.core.keywords import GENERIC_TERMS, MIN_KEYWORD_USERS, ClusterTerms
from stream.core.learning import Learner, Sample, Step
from stream.core.shared_model import FORGET, LEARN, WARMUP, ModelView

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
MAX_TERMS_PER_CLUSTER = 500
TOPICS_EVERY_VERSIONS = 120  # the coarse topics are regrouped on version 1, 121, 241, ... (every ~60 s at 0.5 s)
KEYWORDS_EVERY_VERSIONS = 10  # cluster keywords are re-ranked on version 1, 11, 21, ... (every ~5 s at 0.5 s)
SHOWN_KEYWORDS = 10  # per cluster and per topic in a view (profiles show 5, /clusters 10)
EXAMPLES_PER_CLUSTER = 3
SNIPPET_MAX_DIGITS = 3  # a snippet with this many digit characters (any script, anywhere) is not shown


@dataclass(frozen=True, slots=True)
class _Held:
    """A warm-up sample waiting for the first fit."""

    source: str
    offset: int
    ts: int
    vec: np.ndarray
    tokens: list[str]
    tag: str | None
    text: str


def _digits(text: str) -> int:
    """How many digits a snippet shows: digit characters of any script, or the longest run of numerals
    (一三八…, so that ordinary words such as 一般 or 三星 still pass)."""
    run = longest = 0
    for ch in text:
        run = run + 1 if unicodedata.numeric(ch, -1) >= 0 else 0
        longest = max(longest, run)
    return max(sum(ch.isdigit() for ch in text), longest)


def generic_clusters(terms: ClusterTerms, n: int = SHOWN_KEYWORDS) -> frozenset[int]:
    """Clusters that say how rather than what: at least half of their top ``n`` keywords are generic review words."""
    ranked = terms.top_keywords(n)
    return frozenset(c for c, kws in ranked.items() if kws and sum(w in GENERIC_TERMS for w, _ in kws) * 2 >= len(kws))


class ModelOwner:
    """Merges learning messages into one clustering model and describes each version."""

    def __init__(self, clusterer: OnlineClusterer, *, encoder_version: str, topics: int = 0,
                 warmup_max_wait: float = 30.0, max_terms_per_cluster: int = MAX_TERMS_PER_CLUSTER) -> None:
        self.clusterer = clusterer
        self.encoder_version = encoder_version
        self.topics = topics
        self.warmup_max_wait = warmup_max_wait
        self.max_terms_per_cluster = max_terms_per_cluster
        self.terms = ClusterTerms()
        self.examples: dict[int, list[tuple[float, str, str, list[str]]]] = {}  # (similarity, text, tag, tokens)
        self.merged: dict[str, int] = {}
        self.forgets: dict[str, tuple[int, int]] = {}  # per stage-2 partition the last forget request taken out
        self.position = -1  # offset of the last learning-topic record taken into account
        self.number = 0  # versions published
        self.changed = False
        self.held: dict[tuple[str, int], _Held] = {}
        self.dropped: set[tuple[str, int]] = set()  # warm-up samples a forget took back (at most the warm-up's)
        self.held_since: float | None = None
        # Ranking keywords is most of a version's cost and they move slowly, so the coarse grouping and the
        # keywords are recomputed every TOPICS_EVERY_VERSIONS / KEYWORDS_EVERY_VERSIONS versions (and after a
        # forget, so that a forgotten writer's words leave with the next version).
        self._topics: tuple[dict[int, int], dict[int, list[str]]] | None = None  # topic per cluster, topic keywords
        self._keywords: tuple[dict[int, list[str]], frozenset[int]] | None = None  # cluster keywords, generic clusters
        self.counts = {"merged": 0, "duplicate": 0, "overlap": 0, "foreign": 0, "invalid": 0, "forget": 0}

    # ------------------------------------------------------------------ input

    def receive(self, message: Mapping[str, Any], *, position: int = -1, now: float = 0.0) -> None:
        """Take one learning-topic record into account once (records at or before ``position`` were seen)."""
        if 0 <= position <= self.position:
            self.counts["duplicate"] += 1
            return
        try:
            kind = message.get("type")
            if kind == FORGET:
                if self._new_forget(message.get("ref")):
                    self._forget(str(message["tag"]), message.get("terms") or {}, message.get("samples") or ())
            elif message.get("encoder") != self.encoder_version:
                self.counts["foreign"] += 1  # another encoder's vectors cannot be merged with these centres
            elif kind == WARMUP:
                self._warmup(message["parts"], now)
            elif kind == LEARN:
                self._learn(message["parts"])
            else:
                self.counts["invalid"] += 1
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.counts["invalid"] += 1
            log.warning("learning message %s skipped: %r", position, exc)
        self.position = max(self.position, position)

    def fit_if_due(self, now: float, *, force: bool = False) -> bool:
        """Fit the first centres on the warm-up buffer once it is full, or after ``warmup_max_wait`` with >= k."""
        if self.clusterer.fitted or not self.held:
            return False
        waited = self.held_since is not None and now - self.held_since >= self.warmup_max_wait
        if len(self.held) < self.clusterer.warmup and not ((force or waited) and len(self.held) >= self.clusterer.k):
            return False
        held = sorted(self.held.values(), key=lambda h: (h.ts, h.source, h.offset))
        self.held, self.held_since = {}, None
        x = np.stack([h.vec for h in held])
        self.clusterer.warm_start(x)
        labels, sims = self.view_centres().assign(x)
        self._add_terms([(int(c), h.tokens, h.tag) for h, c in zip(held, labels)])
        self._keep_examples([(int(c), float(m), h.text, h.tag, h.tokens) for h, c, m in zip(held, labels, sims)])
        self.changed = True
        return True

    # ------------------------------------------------------------------ output

    def view(self) -> ModelView:
        """The version to publish (numbered by :meth:`publish`), with the keywords and topics of the last ranking."""
        if not self.clusterer.fitted:
            raise RuntimeError("no model before the warm start")
        keywords, generic = self._keywords or self._rank_keywords()
        topic_of, topic_keywords = self._topics or self._rank_topics()
        return ModelView(
            encoder_version=self.encoder_version, lineage=self.clusterer.lineage, number=self.number,
            centers=np.array(self.clusterer.centers, dtype=np.float32), sizes=self.clusterer.sizes().copy(),
            seen=self.clusterer.seen, merged=dict(self.merged),
            keywords=keywords, topic_of=topic_of, topic_keywords=topic_keywords, generic=generic,
            examples=self._shown_examples(),
        )

    def publish(self) -> ModelView:
        """Number a new version and return it; :attr:`changed` is cleared. Keywords are re-ranked on
        every ``KEYWORDS_EVERY_VERSIONS``-th version, topics on every ``TOPICS_EVERY_VERSIONS``-th, and
        both on the first version after a forget."""
        self.number += 1
        self.changed = False
        if self._keywords is None or self.number % KEYWORDS_EVERY_VERSIONS == 1:
            self._keywords = self._rank_keywords()
        if self._topics is None or self.number % TOPICS_EVERY_VERSIONS == 1:
            self._topics = self._rank_topics()
        return self.view()

    def continue_after(self, published: ModelView) -> None:
        """Continue the numbering and the shown keywords of ``published``, the newest version of this lineage
        (its predecessor may have published it after the state this owner was restored from)."""
        if published.lineage != self.clusterer.lineage or published.number < self.number:
            return  # (the same number: a version retried after its state was written, ranked again)
        self.number = published.number
        self._show(published)

    def _show(self, view: ModelView) -> None:
        """Show what ``view`` shows until the next re-ranking (its keywords, generic clusters and topics)."""
        self._keywords = (dict(view.keywords), view.generic)
        self._topics = (dict(view.topic_of), dict(view.topic_keywords))

    def _rank_keywords(self) -> tuple[dict[int, list[str]], frozenset[int]]:
        ranked = self.terms.top_keywords(SHOWN_KEYWORDS, min_users=MIN_KEYWORD_USERS, exclude=GENERIC_TERMS)
        return {c: [w for w, _ in kws] for c, kws in ranked.items()}, generic_clusters(self.terms)

    def _rank_topics(self) -> tuple[dict[int, int], dict[int, list[str]]]:
        topic_of = group_clusters(self.clusterer.centers, self.topics, self.clusterer.sizes())
        ranked = topic_terms(self.terms, topic_of).top_keywords(SHOWN_KEYWORDS, min_users=MIN_KEYWORD_USERS,
                                                               exclude=GENERIC_TERMS)
        return topic_of, {t: [w for w, _ in kws] for t, kws in ranked.items()}

    def snapshot(self, view: ModelView | None = None) -> dict[str, Any]:
        """Everything a new owner needs to continue (JSON-safe): the state topic's record as of ``view``
        (the current state described afresh when not given)."""
        view = self.view() if view is None else view
        return {
            "format": SNAPSHOT_FORMAT, "encoder_version": self.encoder_version, "number": view.number,
            "position": self.position, "merged": dict(self.merged), "topics": self.topics,
            "forgets": {source: list(at) for source, at in self.forgets.items()},
            "dropped": sorted(self.dropped),
            "clusterer": self.clusterer.to_state(), "terms": self.terms.to_dict(),
            "examples_state": {str(c): [list(e) for e in ex] for c, ex in self.examples.items()},
            "view": view.derived(),
        }

    @staticmethod
    def restore(snapshot: Mapping[str, Any], *, warmup_max_wait: float = 30.0) -> ModelOwner:
        """The owner that published ``snapshot``, ready for the learning records after its position."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"model snapshot format {snapshot.get('format')} != {SNAPSHOT_FORMAT}")
        owner = ModelOwner(OnlineClusterer.from_state(snapshot["clusterer"]),
                           encoder_version=str(snapshot["encoder_version"]), topics=int(snapshot["topics"]),
                           warmup_max_wait=warmup_max_wait)
        owner.terms = ClusterTerms.from_dict(snapshot["terms"])
        owner.examples = {int(c): [(float(m), str(t), str(g), [str(w) for w in toks]) for m, t, g, toks in ex]
                          for c, ex in snapshot["examples_state"].items()}
        owner.merged = {str(s): int(o) for s, o in snapshot["merged"].items()}
        owner.forgets = {str(s): (int(o), int(i)) for s, (o, i) in snapshot.get("forgets", {}).items()}
        owner.dropped = {(str(s), int(o)) for s, o in snapshot.get("dropped", ())}
        owner.position = int(snapshot["position"])
        owner.number = int(snapshot["number"])
        owner._show(ModelView.from_snapshot(snapshot))
        return owner

    def view_centres(self) -> ModelView:
        """A bare view of the current centres, for assigning inside the owner."""
        return ModelView(self.encoder_version, self.clusterer.lineage, self.number,
                         np.asarray(self.clusterer.centers, dtype=np.float32), self.clusterer.sizes(), 0, {})

    # ------------------------------------------------------------------ merging

    def _new_part(self, part: Mapping[str, Any]) -> bool:
        """Whether a part's offsets are all new for its partition; records it as merged if so."""
        source, first, last = str(part["source"]), int(part["first"]), int(part["last"])
        done = self.merged.get(source, -1)
        if last <= done:
            self.counts["duplicate"] += 1
            return False
        if first <= done:
            # Only a worker still sending after it lost the partition (a zombie) can do this;
            # merging would count the overlap twice, so the part is dropped and counted.
            self.counts["overlap"] += 1
            log.warning("learning part %s %d..%d overlaps merged offset %d: dropped", source, first, last, done)
            return False
        self.merged[source] = last
        return True

    def _warmup(self, parts: Sequence[Mapping[str, Any]], now: float) -> None:
        late: list[_Held] = []
        dim = self.clusterer.centers.shape[1] if self.clusterer.fitted else None
        for part in parts:
            samples = [_Held(str(part["source"]), int(s["offset"]), int(s["ts"]), decode_array(s["vec"], np.float32),
                             [str(t) for t in s["tokens"]], s.get("tag"), str(s.get("text", ""))) for s in part["samples"]]
            if dim is not None and any(h.vec.shape != (dim,) for h in samples):
                raise ValueError("warm-up vector of another dimension")
            if not self._new_part(part):
                continue
            self.counts["merged"] += 1
            if self.clusterer.fitted:
                late.extend(samples)
            else:
                self.held.update({(h.source, h.offset): h for h in samples})
                self.held_since = now if self.held_since is None else self.held_since
        if late:  # sent before the first version reached their worker: learned like any batch
            x = np.stack([h.vec for h in late])
            labels, sims = self.view_centres().assign(x)
            self._merge_batch(x, labels, [(int(c), h.tokens, h.tag) for h, c in zip(late, labels)],
                              [(int(c), float(m), h.text, h.tag, h.tokens) for h, c, m in zip(late, labels, sims)])

    def _learn(self, parts: Sequence[Mapping[str, Any]]) -> None:
        """The new parts of one message merged as one batch (one ``partial_fit``, one decay), as the worker learned it."""
        if not self.clusterer.fitted:
            raise ValueError("learning statistics before the first fit")
        k, dim = self.clusterer.centers.shape
        full_sums, full_counts = np.zeros((k, dim)), np.zeros(k)
        texts: list[tuple[int, list[str], str | None]] = []
        examples: list[tuple[int, float, str, str | None, list[str]]] = []
        for part in parts:
            clusters = [int(c) for c in part["clusters"]]
            counts = [float(n) for n in part["counts"]]
            sums = decode_array(part["sums"], np.float32).reshape(len(clusters), dim)
            if len(counts) != len(clusters) or any(not 0 <= c < k for c in clusters) or any(n <= 0 for n in counts):
                raise ValueError("learning part with inconsistent clusters and counts")
            if not self._new_part(part):
                continue
            self.counts["merged"] += 1
            for c, n, row in zip(clusters, counts, sums):
                full_sums[c] += row
                full_counts[c] += n
            texts += [(int(c), [str(t) for t in toks], tag) for c, toks, tag in part["texts"]]
            examples += [(int(c), float(m), str(t), g, [str(w) for w in toks]) for c, m, t, g, toks in part["examples"]]
        if full_counts.any():
            self._merge_summary(full_sums, full_counts, texts, examples)

    def _merge_batch(self, x: np.ndarray, labels: np.ndarray, texts: list, examples: list) -> None:
        k, dim = self.clusterer.centers.shape
        sums, counts = np.zeros((k, dim)), np.zeros(k)
        np.add.at(sums, labels, x)
        np.add.at(counts, labels, 1)
        self._merge_summary(sums, counts, texts, examples)

    def _merge_summary(self, sums: np.ndarray, counts: np.ndarray, texts: list, examples: list) -> None:
        self.clusterer.learn_summary(sums, counts)
        if self.clusterer.half_life_events > 0:
            self.terms.decay(0.5 ** (float(counts.sum()) / self.clusterer.half_life_events))
        self._add_terms(texts)
        self._keep_examples(examples)
        self.changed = True

    def _add_terms(self, texts: Sequence[tuple[int, list[str], str | None]]) -> None:
        for cluster, tokens, tag in texts:
            self.terms.add(cluster, tokens, tag=tag)
        # Pruning sorts a cluster's vocabulary: done once a cluster holds twice the bound, it costs little per text.
        if any(len(words) > 2 * self.max_terms_per_cluster for words in self.terms.counts.values()):
            self.terms.prune(self.max_terms_per_cluster)

    def _keep_examples(self, candidates: Sequence[tuple[int, float, str, str | None, list[str]]]) -> None:
        """Per cluster the ``EXAMPLES_PER_CLUSTER`` distinct snippets closest to the centre when learned."""
        for cluster, sim, text, tag, tokens in candidates:
            kept = self.examples.setdefault(cluster, [])
            if not text or any(e[1] == text for e in kept):
                continue
            kept.append((round(sim, 4), text, tag or "", list(tokens)))
            kept.sort(key=lambda e: -e[0])
            del kept[EXAMPLES_PER_CLUSTER:]

    def _shown_examples(self) -> dict[int, list[str]]:
        """Snippets safe to show: every word of one was written by at least ``MIN_KEYWORD_USERS`` users
        (one person's name, id or spam never appears, even inside an otherwise ordinary sentence), and it
        holds no number of :data:`SNIPPET_MAX_DIGITS` digits or more (numbers are never tokens, so the
        writer count cannot vouch for them; a masked placeholder may be shown)."""
        shown: dict[int, list[str]] = {}
        for cluster, kept in self.examples.items():
            writers = self.terms.users.get(cluster, {})
            ok = [text for _, text, _, tokens in kept
                  if tokens and all(len(writers.get(t, ())) >= MIN_KEYWORD_USERS for t in tokens)
                  and _digits(text) < SNIPPET_MAX_DIGITS]
            if ok:
                shown[cluster] = ok
        return shown

    def _new_forget(self, ref: Mapping[str, Any] | None) -> bool:
        """Whether a forget request's words are still to be taken out (subtracting them twice would take
        other writers' counts); records it if so. A request without a ref (stage 1's dropped warm-up
        samples, which :meth:`_forget` takes out once by their positions) always is."""
        if ref is None:
            return True
        source, at = str(ref["source"]), (int(ref["offset"]), int(ref["index"]))
        if source in self.forgets and at <= self.forgets[source]:
            self.counts["duplicate"] += 1
            log.info("forget request at %s %s taken out before: skipped", source, at)
            return False
        self.forgets[source] = at
        return True

    def _forget(self, tag: str, terms: Mapping[str, Mapping[str, float]], samples: Sequence[Mapping[str, Any]]) -> None:
        self.counts["forget"] += 1
        for cluster, counts in terms.items():
            for token, n in counts.items():
                self.terms.remove(int(cluster), [str(token)], weight=float(n))
        positions = [(str(s["source"]), int(s["offset"])) for s in samples]
        fitted_with = [s for s, p in zip(samples, positions) if p not in self.held and p not in self.dropped]
        for p in positions:
            self.held.pop(p, None)
        self.dropped.update(positions)  # stage 1 sends them again if it dies before its checkpoint
        if fitted_with and self.clusterer.fitted:  # the first fit used them: their words go (the centres stay)
            labels, _ = self.view_centres().assign(np.stack([decode_array(s["vec"], np.float32) for s in fitted_with]))
            for s, cluster in zip(fitted_with, labels):
                self.terms.remove(int(cluster), [str(t) for t in s["tokens"]])
        self.terms.forget_tag(tag)
        self._keywords = self._topics = None
        self.examples = {c: [e for e in ex if e[2] != tag] for c, ex in self.examples.items()}
        self.held = {p: h for p, h in self.held.items() if h.tag != tag}
        self.changed = self.changed or self.clusterer.fitted


def run_locally(
    owner: ModelOwner, learner: Learner, fresh: Sequence[Sample], *, now: float = 0.0, force: bool = False
) -> Step:
    """One micro-batch with the owner in the same process: what stage 1 and the owner do across the
    learning topic, for ``stream eval``, benchmarks and tests (one learning rule for both)."""
    step = learner.step(fresh)
    deliver(owner, learner, step.messages, now=now, force=force)
    learner.confirm(step.covers)
    if step.held and learner.fitted:  # the first version came from these very texts
        step = learner.step([])
        learner.confirm(step.covers)
    return step


def deliver(
    owner: ModelOwner, learner: Learner, messages: Sequence[Mapping[str, Any]], *, now: float = 0.0, force: bool = False
) -> None:
    """Hand ``messages`` to an in-process owner and the resulting version, if any, back to ``learner``."""
    for message in messages:
        owner.receive(message, now=now)
    owner.fit_if_due(now, force=force)
    if owner.changed:
        learner.use(owner.publish())
