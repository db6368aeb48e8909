"""A coarse level above the interest clusters: centroids grouped into a handful of topics.

Fine clusters (20-40) separate what people buy (books from phones, hotels from fruit); a
person reading a profile also wants the broad picture. The unit-length centroids are
grouped by a k-means weighted by cluster size (cheap: k is small; deterministic: fixed
seed), so it is simply recomputed whenever the centres move. Measured on simulated users
(``stream eval --users``), size-weighted k-means groups categories better than Ward,
average or complete linkage, which leave one giant group and many singletons.

A topic is named by its smallest member cluster, so a topic keeps its id as long as its
membership does not change, and the ids are stable across restarts (the grouping depends
only on the centres and sizes, which the checkpoint holds).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.cluster import KMeans

from stream.core.keywords import TRACKED_USERS, ClusterTerms


def group_clusters(centers: np.ndarray, n_topics: int, sizes: np.ndarray | None = None) -> dict[int, int]:
    """Topic id per cluster id; with ``n_topics`` <= 1 or >= k, every cluster is its own topic.

    >>> c = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], dtype=np.float32)
    >>> group_clusters(c, 2)
    {0: 0, 1: 0, 2: 2, 3: 2}
    """
    k = len(centers)
    if n_topics <= 1 or n_topics >= k:
        return {c: (0 if n_topics == 1 else c) for c in range(k)}
    x = np.asarray(centers, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    weights = None if sizes is None else np.maximum(np.asarray(sizes, dtype=np.float64), 1e-6)
    labels = KMeans(n_clusters=n_topics, n_init=10, random_state=0).fit(x, sample_weight=weights).labels_
    first = {label: min(c for c in range(k) if labels[c] == label) for label in set(labels.tolist())}
    return {c: first[int(labels[c])] for c in range(k)}


def topic_terms(terms: ClusterTerms, topic_of: Mapping[int, int]) -> ClusterTerms:
    """Keyword counts (and writers) per topic: the sums (and unions) of its clusters'.

    >>> t = topic_terms(ClusterTerms({0: {"屏幕": 2.0}, 1: {"屏幕": 1.0, "电池": 1.0}}), {0: 0, 1: 0})
    >>> t.counts
    {0: {'屏幕': 3.0, '电池': 1.0}}
    """
    counts: dict[int, dict[str, float]] = {}
    users: dict[int, dict[str, dict[str, None]]] = {}  # ordered sets of writer tags
    for cluster, words in terms.counts.items():
        topic = topic_of.get(cluster, cluster)
        mine = counts.setdefault(topic, {})
        for token, n in words.items():
            mine[token] = mine.get(token, 0.0) + n
        writers = users.setdefault(topic, {})
        for token, tags in terms.users.get(cluster, {}).items():
            merged = writers.get(token)
            if merged is None:
                writers[token] = dict.fromkeys(tags)
            elif len(merged) < TRACKED_USERS:
                merged.update(dict.fromkeys(tags))
    return ClusterTerms(counts, min_count=terms.min_count, users=users)
