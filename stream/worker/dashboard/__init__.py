"""The dashboard: a static page (``index.html``, ``app.js``, vendored Apache ECharts) and the data behind it.

The page holds no data and needs no token to load; it polls the worker's JSON endpoints,
which require the API token like every other view:

- ``GET /dashboard/data``: :meth:`stream.worker.metrics.Metrics.summary` plus the watermark;
  the page turns successive readings into throughput.
- ``GET /clusters``: the interest map, one entry per cluster with ``x``/``y`` (its centre
  projected to 2-D), ``size``, ``keywords`` and ``snippets`` (masked texts near the centre).
- ``GET /alerts/recent``: ``{"alerts": [...]}``, the newest churn alerts first.
- ``GET /profiles/{user_id}``: the public profile (RFM, interests, churn and its reasons).

Snippets and recent alerts live only in memory and drop a user's entries when the user
is forgotten; the snippets are the cleaned text the encoder saw, with personal data masked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
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


def interest_map(
    centres: np.ndarray, sizes: Sequence[float], keywords: Mapping[int, Sequence[str]], snippets: Snippets
) -> list[dict[str, Any]]:
    """One point per cluster for the dashboard's scatter plot (the ``clusters`` of ``GET /clusters``)."""
    xy = project_2d(centres)
    return [
        {
            "cluster": c,
            "size": round(float(sizes[c]), 2),
            "x": round(float(xy[c, 0]), 4),
            "y": round(float(xy[c, 1]), 4),
            "keywords": list(keywords.get(c, [])),
            "snippets": snippets.top(c),
        }
        for c in range(len(xy))
    ]


class Snippets:
    """Per cluster, the masked texts nearest its centre among the most recent ``window`` assigned to it."""

    def __init__(self, per_cluster: int = 3, window: int = 50, max_chars: int = 80) -> None:
        self.per_cluster = per_cluster
        self.max_chars = max_chars
        self.window = window
        self.recent: dict[int, deque[tuple[float, str, str]]] = {}

    def offer(self, cluster: int, user_id: str, text: str, distance: float) -> None:
        text = text.strip()
        if not text:
            return
        clipped = text if len(text) <= self.max_chars else text[: self.max_chars - 1] + "…"
        self.recent.setdefault(cluster, deque(maxlen=self.window)).append((float(distance), user_id, clipped))

    def top(self, cluster: int) -> list[str]:
        out: list[str] = []
        for _, _, text in sorted(self.recent.get(cluster, ()), key=lambda item: item[0]):
            if text not in out:
                out.append(text)
            if len(out) == self.per_cluster:
                break
        return out

    def forget(self, user_id: str) -> None:
        for cluster, items in self.recent.items():
            self.recent[cluster] = deque((i for i in items if i[1] != user_id), maxlen=self.window)


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
