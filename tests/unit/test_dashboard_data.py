"""The dashboard's server side: which files it serves, the interest map layout, snippets and recent alerts."""

from __future__ import annotations

from importlib import resources

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stream.worker.dashboard import ASSETS, RecentAlerts, Snippets, asset, interest_map, project_2d


def test_serves_the_page_its_script_and_echarts_and_nothing_else() -> None:
    page, content_type = asset("index.html")
    assert content_type.startswith("text/html")
    assert b'src="/dashboard/echarts.min.js"' in page and b'src="/dashboard/app.js"' in page
    assert asset("echarts.min.js")[0].startswith(b"\n/*\n* Licensed to the Apache Software Foundation")
    for name in ("../metrics.py", "__init__.py", "echarts-LICENSE.txt", "/etc/passwd", ""):
        assert asset(name) is None


def test_the_vendored_library_ships_with_its_licences() -> None:
    files = {p.name for p in resources.files("stream.worker.dashboard").iterdir()}
    assert set(ASSETS) <= files
    assert {"echarts-LICENSE.txt", "echarts-NOTICE.txt", "echarts-LICENSE-d3.txt", "zrender-LICENSE.txt", "tslib-LICENSE.txt"} <= files


@given(
    plane=arrays(np.float64, (6, 2), elements=st.floats(-10, 10)),
    seed=st.integers(0, 2**16),
)
def test_centres_on_a_plane_keep_their_distances_in_proportion(plane: np.ndarray, seed: int) -> None:
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(32, 2)))  # an orthonormal plane in 32-D
    centres = plane @ basis.T + 3.0
    xy = project_2d(centres)
    assert xy.shape == (6, 2) and np.all(np.abs(xy) <= 1 + 1e-9)
    original = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    projected = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    assume(original.max() > 1e-3)
    scale = projected.max() / original.max()
    assert np.allclose(projected, original * scale, atol=1e-6)


def test_map_does_not_mirror_between_polls_of_a_slowly_moving_model() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 16))
    before = project_2d(centres)
    after = project_2d(centres + rng.normal(scale=1e-4, size=centres.shape))
    assert np.allclose(before, after, atol=1e-2)


def test_degenerate_models_give_the_origin_not_nan() -> None:
    assert project_2d(np.ones((3, 8))).tolist() == [[0.0, 0.0]] * 3
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(32, 2)))
    same = np.array([[1.0, 1.0]] * 4) @ basis.T + 3.0  # equal centres, up to rounding
    assert np.allclose(project_2d(same), 0)
    assert project_2d(np.zeros((0, 8))).shape == (0, 2)
    two = project_2d(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    assert np.allclose(np.abs(two[:, 0]), 1) and np.allclose(two[:, 1], 0)


def test_snippets_are_the_nearest_distinct_recent_texts_clipped() -> None:
    s = Snippets(per_cluster=2, window=4, max_chars=10)
    s.offer(0, "u1", "远的评论", 0.9)
    s.offer(0, "u2", "近的评论", 0.1)
    s.offer(0, "u3", "近的评论", 0.2)  # the same text twice shows once
    s.offer(0, "u4", "一条非常非常非常长的评论内容", 0.3)
    s.offer(1, "u1", "   ", 0.0)  # nothing to show
    assert s.top(0) == ["近的评论", "一条非常非常非常长…"]
    assert s.top(1) == [] and s.top(7) == []
    for i in range(4):
        s.offer(0, "u5", f"新{i}", 0.5)  # the window keeps the most recent texts only
    assert s.top(0) == ["新0", "新1"]


def test_a_forgotten_user_leaves_no_snippet_and_no_alert() -> None:
    s = Snippets()
    s.offer(0, "gone", "我的评论 <PHONE>", 0.1)
    s.offer(0, "stays", "别人的评论", 0.5)
    s.forget("gone")
    assert s.top(0) == ["别人的评论"]
    alerts = RecentAlerts()
    alerts.add({"user_id": "gone", "type": "churn_risk"})
    alerts.add({"user_id": "stays", "type": "churn_risk"})
    alerts.forget("gone")
    assert [a["user_id"] for a in alerts.newest()] == ["stays"]


def test_recent_alerts_newest_first_and_bounded() -> None:
    alerts = RecentAlerts(keep=3)
    for i in range(5):
        alerts.add({"user_id": f"u{i}", "type": "churn_risk"})
    assert [a["user_id"] for a in alerts.newest()] == ["u4", "u3", "u2"]
    assert [a["user_id"] for a in alerts.newest(1)] == ["u4"]


def test_interest_map_entries() -> None:
    snippets = Snippets()
    snippets.offer(1, "u1", "屏幕很好", 0.1)
    points = interest_map(np.eye(3), [5.0, 2.5, 0.0], {1: ["屏幕", "电池"]}, snippets)
    assert [p["cluster"] for p in points] == [0, 1, 2]
    assert points[1]["keywords"] == ["屏幕", "电池"] and points[1]["snippets"] == ["屏幕很好"]
    assert points[0]["keywords"] == [] and points[2]["size"] == 0.0
    assert all(-1 <= p["x"] <= 1 and -1 <= p["y"] <= 1 for p in points)
