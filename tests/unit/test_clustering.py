"""Tests for stream.core.clustering: warm start quality, online learning, snapshots and forgetting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score as nmi

from stream.core.clustering import SNAPSHOT_FORMAT, OnlineClusterer, SnapshotMismatch

DIM = 16


def blobs(rng: np.random.Generator, centres: np.ndarray, n: int, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised points around ``centres`` (like sentence embeddings), with their true labels."""
    labels = rng.integers(0, len(centres), n)
    x = centres[labels] + noise * rng.standard_normal((n, centres.shape[1]))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


AXES = np.eye(DIM)


@pytest.fixture
def fitted() -> OnlineClusterer:
    c = OnlineClusterer(k=3, warmup=60, seed=0)
    c.warm_start(blobs(np.random.default_rng(0), AXES[:3], 60)[0])
    return c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warm_start_separates_well_separated_blobs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = blobs(rng, AXES[:4], 80)
    c = OnlineClusterer(k=4, warmup=80, seed=seed)
    c.warm_start(x)
    assert c.fitted
    assert c.centers.shape == (4, DIM)
    labels, sims = c.assign(x)
    assert nmi(y, labels) >= 0.95
    assert labels.dtype == np.int64 and ((labels >= 0) & (labels < 4)).all()
    assert sims.shape == (80,) and (sims > 0.9).all()
    # held-out points from the same distribution are assigned just as well
    xt, yt = blobs(np.random.default_rng(100 + seed), AXES[:4], 200)
    assert nmi(yt, c.assign(xt)[0]) >= 0.95


def test_warm_start_with_fewer_than_k_rows_raises() -> None:
    c = OnlineClusterer(k=5, warmup=10)
    with pytest.raises(ValueError, match="k=5"):
        c.warm_start(blobs(np.random.default_rng(0), AXES[:3], 4)[0])
    assert not c.fitted


def test_learn_and_assign_before_warm_start_raise() -> None:
    c = OnlineClusterer(k=3, warmup=10)
    x = blobs(np.random.default_rng(0), AXES[:3], 5)[0]
    with pytest.raises(RuntimeError, match="warm_start"):
        c.learn(x)
    with pytest.raises(RuntimeError):
        c.assign(x)
    with pytest.raises(RuntimeError):
        _ = c.centers
    assert c.sizes().tolist() == [0.0, 0.0, 0.0]


def test_float64_input_is_converted_to_float32() -> None:
    rng = np.random.default_rng(3)
    x, y = blobs(rng, AXES[:3], 60)
    c = OnlineClusterer(k=3, warmup=60)
    c.warm_start(x.astype(np.float64))
    assert c.centers.dtype == np.float32
    more = blobs(rng, AXES[:3], 30)[0].astype(np.float64)
    c.learn(more)  # sklearn would refuse float64 after a float32 fit
    c.learn(more[0])  # a single 1-D row, too
    labels, _ = c.assign(x.astype(np.float64))
    assert nmi(y, labels) >= 0.95
    assert c.seen == 60 + 30 + 1


def test_learning_an_empty_batch_is_a_no_op(fitted: OnlineClusterer) -> None:
    before = (fitted.version, fitted.centers.copy(), fitted.seen)
    fitted.learn(np.empty((0, DIM), dtype=np.float32))
    assert (fitted.version, fitted.seen) == (before[0], before[2])
    np.testing.assert_array_equal(fitted.centers, before[1])


def test_learning_moves_centres_and_counts(fitted: OnlineClusterer) -> None:
    before = fitted.centers.copy()
    sizes_before = fitted.sizes().sum()
    fitted.learn(blobs(np.random.default_rng(5), AXES[:3], 30)[0])
    assert not np.array_equal(fitted.centers, before)
    assert fitted.sizes().sum() == pytest.approx(sizes_before + 30)
    assert fitted.seen == 90


def test_state_restore_continues_bit_identically(fitted: OnlineClusterer) -> None:
    rng = np.random.default_rng(7)
    fitted.learn(blobs(rng, AXES[:3], 25)[0])
    restored = OnlineClusterer.from_state(json.loads(json.dumps(fitted.to_state())))  # plain JSON, no pickle
    assert restored is not fitted
    assert (restored.k, restored.warmup, restored.seed, restored.lineage) == (
        fitted.k,
        fitted.warmup,
        fitted.seed,
        fitted.lineage,
    )
    assert restored.version == fitted.version
    np.testing.assert_array_equal(restored.centers, fitted.centers)
    # the same future batches give exactly the same centres (random state travels too)
    for _ in range(5):
        batch = blobs(rng, AXES[:3], 40)[0]
        fitted.learn(batch)
        restored.learn(batch)
        np.testing.assert_array_equal(restored.centers, fitted.centers)
        np.testing.assert_array_equal(restored.sizes(), fitted.sizes())
    assert restored.version == fitted.version
    assert restored.seen == fitted.seen


def test_restored_state_does_not_share_arrays_with_the_original(fitted: OnlineClusterer) -> None:
    restored = OnlineClusterer.from_state(fitted.to_state())
    centres = restored.centers.copy()
    fitted.learn(blobs(np.random.default_rng(8), AXES[:3], 40)[0])
    np.testing.assert_array_equal(restored.centers, centres)


@pytest.mark.parametrize("override", [{"format": SNAPSHOT_FORMAT + 1}, {"format": None}, {"format": 1}])
def test_restore_refuses_another_state_format(fitted: OnlineClusterer, override: dict) -> None:
    with pytest.raises(SnapshotMismatch, match="format"):
        OnlineClusterer.from_state({**fitted.to_state(), **override})
    # SnapshotMismatch is a ValueError so callers can treat it as "start afresh"
    assert issubclass(SnapshotMismatch, ValueError)


def test_a_summary_of_sums_and_counts_moves_centres_exactly_as_the_batch_itself(fitted: OnlineClusterer) -> None:
    """The shared model's rule: a worker's per-cluster sums and counts, fed as weighted means, equal
    MiniBatchKMeans learning the texts themselves (same labels, same decay)."""
    fitted.half_life_events = 200
    fitted.reassignment_ratio = 0.0
    fitted.model.reassignment_ratio = 0.0
    twin = OnlineClusterer.from_state(fitted.to_state())
    batch = blobs(np.random.default_rng(11), AXES[:3], 40)[0]
    labels = fitted.model.predict(batch)  # the labels partial_fit itself uses
    sums = np.zeros((fitted.k, batch.shape[1]))
    counts = np.zeros(fitted.k)
    np.add.at(sums, labels, batch)
    np.add.at(counts, labels, 1)
    fitted.learn(batch)
    twin.learn_summary(sums, counts)
    np.testing.assert_allclose(twin.centers, fitted.centers, atol=1e-6)
    np.testing.assert_allclose(twin.sizes(), fitted.sizes(), rtol=1e-6)
    assert twin.seen == fitted.seen


def test_a_summary_of_another_shape_is_refused(fitted: OnlineClusterer) -> None:
    with pytest.raises(ValueError, match="shapes"):
        fitted.learn_summary(np.zeros((fitted.k + 1, 3)), np.ones(fitted.k + 1))


def test_version_changes_with_every_update_and_keeps_the_lineage(fitted: OnlineClusterer) -> None:
    seen = {fitted.version}
    lineage = fitted.lineage
    assert lineage in fitted.version and f"k{fitted.k}" in fitted.version
    rng = np.random.default_rng(9)
    for _ in range(4):
        fitted.learn(blobs(rng, AXES[:3], 10)[0])
        assert fitted.version not in seen
        assert lineage in fitted.version
        seen.add(fitted.version)
    assert fitted.lineage == lineage
    restored = OnlineClusterer.from_state(fitted.to_state())
    restored.learn(blobs(rng, AXES[:3], 10)[0])
    assert restored.lineage == lineage and restored.version not in seen


def test_independent_clusterers_have_different_lineages() -> None:
    assert OnlineClusterer(k=2, warmup=4).lineage != OnlineClusterer(k=2, warmup=4).lineage


def drift_nmi(half_life_events: float, seed: int) -> float:
    """Warm start on three topics, then the stream moves to three other topics."""
    rng = np.random.default_rng(seed)
    c = OnlineClusterer(k=3, warmup=60, seed=seed, half_life_events=half_life_events)
    c.warm_start(blobs(rng, AXES[:3], 60)[0])
    for _ in range(60):
        c.learn(blobs(rng, AXES[3:6], 20)[0])
    xt, yt = blobs(np.random.default_rng(1000 + seed), AXES[3:6], 300)
    return nmi(yt, c.assign(xt)[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_half_life_lets_new_topics_get_their_own_centres(seed: int) -> None:
    with_decay = drift_nmi(50, seed)
    without = drift_nmi(0, seed)
    assert with_decay >= 0.95
    assert with_decay > without + 0.2


def test_half_life_decays_counts(fitted: OnlineClusterer) -> None:
    fitted.half_life_events = 30
    before = fitted.sizes().copy()
    # 30 events = one half-life: old counts halve before the new batch is added
    fitted.learn(blobs(np.random.default_rng(4), AXES[:3], 30)[0])
    assert fitted.sizes().sum() == pytest.approx(before.sum() / 2 + 30, rel=1e-4)
