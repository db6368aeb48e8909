"""The dashboard: a static page (``index.html``, ``app.js``, vendored Apache ECharts) and the data behind it.

The page holds no data and needs no token to load; it polls the worker's JSON endpoints,
which require the API token like every other view:

- ``GET /dashboard/data``: :meth:`stream.worker.metrics.Metrics.summary` plus the watermark;
  the page turns successive readings into throughput.
- ``GET /clusters``: the interest map: per cluster ``x``/``y`` (its centre projected to 2-D,
  see :func:`place`), ``size``, ``keywords``, ``examples`` (masked snippets) and its ``topic``;
  per coarse topic its clusters, size, keywords and position.
- ``GET /alerts/recent``: ``{"alerts": [...]}``, the newest churn alerts first.
- ``GET /profiles/{user_id}``: the public profile (RFM, interests, churn and its reasons).

Recent alerts live only in memory and drop a user's alerts when the user is forgotten.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np

# Files the worker serves under /dashboard/ (nothing else in the folder is reachable).
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "echarts.min.js": "text/javascript; charset=utf-8",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """Bytes and content type of a dashboard file, None for anything not in :data:`ASSETS`."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    return resources.files(__package__).joinpath(name).read_bytes(), content_type


def project_2d(centres: np.ndarray) -> np.ndarray:
    """Cluster centres placed in the plane by their two principal components, scaled into [-1, 1]
    (one scale for both axes, so distances keep their proportions).

    Signs are fixed (each component's largest loading positive) so the map does not
    mirror itself between two polls of a slowly moving model.

    >>> project_2d(np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.0]])).round(2).tolist()
    [[-1.0, -0.33], [1.0, -0.33], [0.0, 0.67]]
    """
    points = np.asarray(centres, dtype=np.float64)
    if len(points) == 0:
        return np.zeros((0, 2))
    centred = points - points.mean(axis=0)
    _, spread, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((points.shape[1], 2))
    noise = 1e-9 * len(points) * max(float(np.abs(points).max()), 1.0)  # rounding, not a real difference
    for i in range(min(2, len(vt))):
        if spread[i] > noise:  # no spread along this component: its coordinate stays 0
            axes[:, i] = vt[i] * np.sign(vt[i][np.argmax(np.abs(vt[i]))])
    xy = centred @ axes
    scale = np.abs(xy).max()
    return xy / scale if scale > 0 else xy


def place(clusters: dict[str, Any], centres: np.ndarray | None) -> dict[str, Any]:
    """The ``GET /clusters`` body with map positions: ``x``/``y`` per cluster (its centre in 2-D)
    and per topic (the size-weighted mean of its clusters' positions)."""
    if centres is None or not clusters.get("clusters"):
        return clusters
    xy = project_2d(centres)
    out = dict(clusters)
    out["clusters"] = [{**c, "x": round(float(xy[c["cluster"], 0]), 4), "y": round(float(xy[c["cluster"], 1]), 4)}
                       for c in clusters["clusters"]]
    sizes = {c["cluster"]: float(c["size"]) for c in clusters["clusters"]}
    topics = []
    for t in clusters.get("topics", []):
        members = t["clusters"]
        weights = np.array([sizes.get(c, 0.0) for c in members]) + 1e-9
        x, y = (weights[:, None] * xy[members]).sum(axis=0) / weights.sum()
        topics.append({**t, "x": round(float(x), 4), "y": round(float(y), 4)})
    out["topics"] = topics
    return out


class RecentAlerts:
    """The newest churn alerts this worker published, for ``GET /alerts/recent``."""

    def __init__(self, keep: int = 50) -> None:
        self.alerts: deque[dict[str, Any]] = deque(maxlen=keep)

    def add(self, alert: Mapping[str, Any]) -> None:
        self.alerts.appendleft(dict(alert))

    def forget(self, user_id: str) -> None:
        kept = [a for a in self.alerts if a.get("user_id") != user_id]
        self.alerts.clear()
        self.alerts.extend(kept)

    def newest(self, n: int | None = None) -> list[dict[str, Any]]:
        return list(self.alerts)[:n]
