"""The dashboard's server side: which files it serves, the interest map layout, snippets and recent alerts."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stream.worker.dashboard import ASSETS, RecentAlerts, asset, place, project_2d


def test_serves_the_page_its_script_and_echarts_and_nothing_else() -> None:
    page, content_type = asset("index.html")
    assert content_type.startswith("text/html")
    assert b'src="/dashboard/assets/echarts.min.js"' in page and b'src="/dashboard/assets/app.js"' in page
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


def test_a_forgotten_user_leaves_no_recent_alert() -> None:
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


def test_clusters_and_topics_get_map_positions() -> None:
    body = {
        "fitted": True,
        "clusters": [
            {"cluster": 0, "topic": 0, "size": 3.0, "keywords": ["屏幕"], "examples": ["屏幕很好"]},
            {"cluster": 1, "topic": 0, "size": 1.0, "keywords": [], "examples": []},
            {"cluster": 2, "topic": 2, "size": 0.0, "keywords": [], "examples": []},
        ],
        "topics": [{"topic": 0, "clusters": [0, 1], "size": 4.0, "keywords": ["屏幕"]},
                   {"topic": 2, "clusters": [2], "size": 0.0, "keywords": []}],
    }
    placed = place(body, np.eye(3))
    xy = project_2d(np.eye(3))
    assert [(c["x"], c["y"]) for c in placed["clusters"]] == [tuple(round(float(v), 4) for v in p) for p in xy]
    assert placed["clusters"][0]["examples"] == ["屏幕很好"] and body["clusters"][0].keys() == {
        "cluster", "topic", "size", "keywords", "examples"}  # the input is left alone
    t0 = placed["topics"][0]
    assert (t0["x"], t0["y"]) == pytest.approx(tuple(0.75 * xy[0] + 0.25 * xy[1]), abs=1e-4)  # weighted by size
    assert (placed["topics"][1]["x"], placed["topics"][1]["y"]) == pytest.approx(tuple(xy[2]), abs=1e-4)


def test_an_unfitted_model_has_no_positions() -> None:
    body = {"fitted": False, "clusters": [], "topics": []}
    assert place(body, None) is body and place(body, np.eye(3)) == body
