"""Human-readable keywords per interest cluster, ranked by class-based TF-IDF.

A cluster id means nothing to a person looking at a profile; its most distinctive words
do. :class:`ClusterTerms` keeps per-cluster token counts as plain data (no I/O, no model),
so that

* counts are plain sums: there is no fitted vectoriser or vocabulary to keep in step;
* old topics **fade** with the clusters (:meth:`ClusterTerms.decay`, the same half-life
  as the cluster counts) and rare tokens are pruned, so memory stays bounded on an
  endless stream;
* a user's contribution can be **forgotten** (:meth:`ClusterTerms.remove`,
  :meth:`ClusterTerms.forget_user`);
* a word becomes a keyword only when enough **distinct users** wrote it (``min_users`` of
  :meth:`ClusterTerms.top_keywords`), so one user's id, name or spam never labels a cluster;
  users are kept as short hashes of their (pseudonymous) ids, a few per word;
* a snapshot is **JSON-safe** (:meth:`ClusterTerms.to_dict` / :meth:`ClusterTerms.from_dict`).

Ranking is BERTopic's c-TF-IDF: all texts of a cluster form one document, and

    tf(t, c)  = count(t, c) / total(c)
    idf(t)    = log(1 + A / f(t))      A = average token count per cluster,
                                       f(t) = count of t over all clusters
    score     = tf(t, c) * idf(t)

so a word frequent in one cluster but rare elsewhere ranks first, while a word every
cluster uses (e.g. 质量, 不错) sinks, without needing a stopword list per domain.
Tokens are expected to be stopword-filtered already (``stream.core.text.clean``).

>>> terms = ClusterTerms()
>>> terms.add(0, ["屏幕", "电池", "屏幕", "质量"])
>>> terms.add(1, ["房间", "早餐", "质量"])
>>> [word for word, _ in terms.top_keywords(2)[0]]
['屏幕', '电池']
>>> ClusterTerms.from_dict(terms.to_dict()) == terms
True

The module is one class and its doctests: counts, decay, pruning, the distinct-writer rule,
forgetting and the snapshot codec change together, so they stay in one place.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SNAPSHOT_FORMAT = 2  # 2 adds the users per word; a format-1 snapshot loads with none (no keyword until re-seen)
MIN_KEYWORD_USERS = 3  # distinct users who must have written a word before it can label a cluster
TRACKED_USERS = 8  # users remembered per word: enough that forgetting a few rarely hides a keyword
#: How a review is said rather than what it is about: praise, complaint, delivery, service,
#: price and shop words that every product category shares. They stay in the counts (c-TF-IDF
#: and forgetting are unchanged) but never become keywords, so a cluster is named by what is
#: bought. Measured by ``stream eval --users`` (share of keywords not specific to a category).
GENERIC_TERMS = frozenset(
    ["好评", "差评", "中评", "不错", "满意", "不满意", "喜欢", "推荐", "值得", "失望", "后悔", "垃圾", "还行", "很好", "不好", "好用", "太差", "很差", "差劲", "一般般", "完美", "物流", "快递", "发货", "送货", "到货", "收到", "包装", "客服", "卖家", "店家", "商家", "服务", "态度", "速度", "价格", "便宜", "实惠", "性价比", "划算", "正品", "质量", "东西", "宝贝", "商品", "产品", "购买", "购物", "下次", "回购", "五星", "满分", "给力", "支持", "京东", "当当", "亚马逊", "淘宝", "退货", "换货", "售后", "退款", "评价", "好好", "挺不错", "不错不错", "很棒", "超级", "感谢", "谢谢", "不值", "值", "买", "买的", "买了", "用", "用了", "好", "差", "棒", "赞", "坑", "骗"]
)
DEFAULT_MIN_COUNT = 0.01  # below this a decayed count is noise: about 6.6 half-lives after a single sighting
_ZERO = 1e-9  # what remains of a count after add + remove of the same weight, up to float rounding


class ClusterTerms:
    """Per-cluster token counts (``{cluster: {token: count}}``) with c-TF-IDF keywords.

    Counts are floats because they decay; a cluster or token whose count reaches zero is
    removed, so an absent entry and a zero count mean the same thing (and compare equal).

    >>> t = ClusterTerms()
    >>> t.add(3, ["苹果", "新鲜"], weight=2.0)
    >>> t.counts
    {3: {'苹果': 2.0, '新鲜': 2.0}}
    >>> t.decay(0.5); t.counts
    {3: {'苹果': 1.0, '新鲜': 1.0}}
    >>> t.remove(3, ["苹果", "新鲜"]); t.counts
    {}
    """

    __slots__ = ("counts", "min_count", "users")

    def __init__(
        self,
        counts: Mapping[int, Mapping[str, float]] | None = None,
        *,
        min_count: float = DEFAULT_MIN_COUNT,
        users: Mapping[int, Mapping[str, Iterable[str]]] | None = None,
    ) -> None:
        if not min_count >= 0:
            raise ValueError(f"min_count must be >= 0, got {min_count}")
        self.min_count = float(min_count)
        self.counts: dict[int, dict[str, float]] = {}
        for cluster, terms in (counts or {}).items():
            for token, count in terms.items():
                if count < 0 or not math.isfinite(count):
                    raise ValueError(f"count of {token!r} in cluster {cluster} must be finite and >= 0, got {count}")
                if count > _ZERO:
                    self.counts.setdefault(int(cluster), {})[str(token)] = float(count)
        self.users: dict[int, dict[str, list[str]]] = {}
        for cluster, words in (users or {}).items():
            for token, tags in words.items():
                if str(token) in self.counts.get(int(cluster), {}) and tags:
                    self.users.setdefault(int(cluster), {})[str(token)] = list(tags)[:TRACKED_USERS]

    # ------------------------------------------------------------------ updates

    def add(
        self, cluster: int, tokens: Sequence[str], weight: float = 1.0, user: str | None = None, tag: str | None = None
    ) -> None:
        """Count each token occurrence of one text (repeats count again: it is term frequency).

        ``weight`` lets a caller down-weight e.g. search queries against reviews; ``user`` (the
        writer's pseudonymous id), or ``tag`` (its :func:`user_tag`, as workers send it) counts
        towards the distinct users of each token.
        """
        _check_weight(weight)
        if weight == 0 or not tokens:
            return
        terms = self.counts.setdefault(int(cluster), {})
        for token in tokens:
            terms[token] = terms.get(token, 0.0) + weight
        tag = user_tag(user) if user is not None else tag
        if tag is not None:
            seen = self.users.setdefault(int(cluster), {})
            for token in set(tokens):
                tags = seen.setdefault(token, [])
                if tag not in tags and len(tags) < TRACKED_USERS:
                    tags.append(tag)

    def remove(self, cluster: int, tokens: Sequence[str], weight: float = 1.0) -> None:
        """Undo :meth:`add` with the same arguments (e.g. a user asked to be forgotten).

        Counts never go negative: removing more than is there (because it already decayed)
        just drops the token.

        >>> t = ClusterTerms(); t.add(0, ["床单", "前台"]); t.add(0, ["前台"])
        >>> t.remove(0, ["床单", "前台", "早餐"]); t.counts
        {0: {'前台': 1.0}}
        """
        _check_weight(weight)
        terms = self.counts.get(int(cluster))
        if terms is None or weight == 0:
            return
        for token in tokens:
            if token in terms:
                left = terms[token] - weight
                if left > _ZERO:
                    terms[token] = left
                else:
                    del terms[token]
        if not terms:
            del self.counts[int(cluster)]
        self._drop_users_of_missing(int(cluster))

    def forget_user(self, user: str) -> None:
        """A forgotten user no longer counts as a writer of any word (their counts go with :meth:`remove`).

        >>> t = ClusterTerms()
        >>> for u in ("a", "b", "c"): t.add(0, ["屏幕"], user=u)
        >>> t.top_keywords(1, min_users=3)[0][0][0]
        '屏幕'
        >>> t.forget_user("b"); t.top_keywords(1, min_users=3)
        {0: []}
        """
        self.forget_tag(user_tag(user))

    def forget_tag(self, tag: str) -> None:
        """:meth:`forget_user` for a writer known only by its :func:`user_tag`."""
        for cluster in list(self.users):
            for token in list(self.users[cluster]):
                tags = self.users[cluster][token]
                if tag in tags:
                    tags.remove(tag)
                    if not tags:
                        del self.users[cluster][token]
            if not self.users[cluster]:
                del self.users[cluster]

    def _drop_users_of_missing(self, cluster: int) -> None:
        """Users of words no longer counted (removed, decayed away, pruned) are not kept."""
        words = self.users.get(cluster)
        if words is None:
            return
        counted = self.counts.get(cluster, {})
        for token in [t for t in words if t not in counted]:
            del words[token]
        if not words:
            del self.users[cluster]

    def decay(self, factor: float) -> None:
        """Multiply every count by ``factor`` (in (0, 1]) and drop those below ``min_count``.

        Call it with the clusterer's own decay (``0.5 ** (events / half_life)``) so keywords
        follow the centres; dropping tiny counts bounds memory on an endless stream.

        >>> t = ClusterTerms({0: {"手机": 1.0, "信号": 0.015}}); t.decay(0.5); t.counts
        {0: {'手机': 0.5}}
        """
        if not 0 < factor <= 1:
            raise ValueError(f"decay factor must be in (0, 1], got {factor}")
        for cluster in list(self.counts):
            kept = {t: c * factor for t, c in self.counts[cluster].items() if c * factor >= self.min_count}
            if kept:
                self.counts[cluster] = kept
            else:
                del self.counts[cluster]
            self._drop_users_of_missing(cluster)

    def prune(self, max_terms_per_cluster: int) -> None:
        """Keep only the ``max_terms_per_cluster`` largest counts of each cluster (ties: token order).

        The long tail of a cluster's vocabulary never reaches its top keywords but is most
        of the memory.

        >>> t = ClusterTerms({0: {"a1": 3.0, "b2": 1.0, "c3": 2.0}}); t.prune(2); t.counts
        {0: {'a1': 3.0, 'c3': 2.0}}
        """
        if max_terms_per_cluster < 0:
            raise ValueError(f"max_terms_per_cluster must be >= 0, got {max_terms_per_cluster}")
        for cluster in list(self.counts):
            terms = self.counts[cluster]
            if len(terms) > max_terms_per_cluster:
                top = sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))[:max_terms_per_cluster]
                if top:
                    self.counts[cluster] = dict(top)
                else:
                    del self.counts[cluster]
                self._drop_users_of_missing(cluster)

    # ------------------------------------------------------------------ queries

    @property
    def clusters(self) -> list[int]:
        """Clusters that have at least one counted token, ascending."""
        return sorted(self.counts)

    def top_keywords(
        self, n: int = 10, min_users: int = 0, exclude: frozenset[str] = frozenset()
    ) -> dict[int, list[tuple[str, float]]]:
        """Up to ``n`` (token, c-TF-IDF score) per cluster, best first (ties: token order), among
        tokens written by at least ``min_users`` distinct users and not in ``exclude`` (e.g.
        :data:`GENERIC_TERMS`); all tokens count for the scores.

        A word only one cluster uses beats one that all clusters use equally often:

        >>> t = ClusterTerms({0: {"通用": 5.0, "屏幕": 2.0}, 1: {"通用": 5.0, "房间": 2.0}})
        >>> [w for w, _ in t.top_keywords(2)[0]]
        ['屏幕', '通用']
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        totals = {c: sum(terms.values()) for c, terms in self.counts.items()}
        if not totals:
            return {}
        avg = sum(totals.values()) / len(totals)
        freq: dict[str, float] = {}
        for terms in self.counts.values():
            for token, count in terms.items():
                freq[token] = freq.get(token, 0.0) + count
        idf = {token: math.log(1.0 + avg / f) for token, f in freq.items()}
        out: dict[int, list[tuple[str, float]]] = {}
        for cluster in sorted(self.counts):
            total = totals[cluster]
            users = self.users.get(cluster, {})
            scored = [
                (token, count / total * idf[token])
                for token, count in self.counts[cluster].items()
                if (not min_users or len(users.get(token, ())) >= min_users) and token not in exclude
            ]
            scored.sort(key=lambda ts: (-ts[1], ts[0]))
            out[cluster] = scored[:n]
        return out

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (cluster ids become strings: JSON object keys are strings)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "min_count": self.min_count,
            "clusters": {str(c): dict(terms) for c, terms in sorted(self.counts.items())},
            "users": {str(c): {t: list(tags) for t, tags in words.items()} for c, words in sorted(self.users.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterTerms:
        """Inverse of :meth:`to_dict`; rejects snapshots of another format."""
        if data.get("format") not in (1, SNAPSHOT_FORMAT):
            raise ValueError(f"ClusterTerms snapshot format {data.get('format')!r} != {SNAPSHOT_FORMAT}")
        clusters = data.get("clusters") or {}
        users = data.get("users") or {}
        return cls(
            {int(c): terms for c, terms in clusters.items()},
            min_count=data.get("min_count", DEFAULT_MIN_COUNT),
            users={int(c): words for c, words in users.items()},
        )

    @classmethod
    def from_assignments(
        cls, clusters: Iterable[int], tokens: Iterable[Sequence[str]], *, min_count: float = DEFAULT_MIN_COUNT
    ) -> ClusterTerms:
        """Counts of many texts at once: ``clusters[i]`` is the cluster of ``tokens[i]``.

        >>> ClusterTerms.from_assignments([0, 1, 0], [["苹果"], ["酒店"], ["苹果"]]).counts
        {0: {'苹果': 2.0}, 1: {'酒店': 1.0}}
        """
        out = cls(min_count=min_count)
        for cluster, toks in zip(clusters, tokens, strict=True):
            out.add(int(cluster), toks)
        return out

    # ------------------------------------------------------------------ dunder

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClusterTerms):
            return NotImplemented
        return self.counts == other.counts and self.min_count == other.min_count and self.users == other.users

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __len__(self) -> int:
        """Number of (cluster, token) entries: the memory that :meth:`decay` and :meth:`prune` bound."""
        return sum(len(terms) for terms in self.counts.values())

    def __repr__(self) -> str:
        return f"ClusterTerms(clusters={len(self.counts)}, entries={len(self)}, min_count={self.min_count})"


def user_tag(user: str) -> str:
    """A short hash of a user id: enough to tell writers apart, nothing to read back."""
    return hashlib.blake2b(user.encode("utf-8"), digest_size=6).hexdigest()


def _check_weight(weight: float) -> None:
    if not (weight >= 0 and math.isfinite(weight)):
        raise ValueError(f"weight must be finite and >= 0, got {weight}")
