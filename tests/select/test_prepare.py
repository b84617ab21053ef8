"""Feature preparation: what each method guarantees, and a small experiment on
why teachers' features need it before their scores are compared."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from xdistill.errors import XDistillError
from xdistill.select import METRICS, compute_metric, logme, prepare_features


def teacher_features(seed=0, n=300, informative=8, num_classes=3):
    """Features whose class information lies in a few dimensions."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    features = rng.standard_normal((n, informative)) + 1.5 * rng.standard_normal((num_classes, informative))[labels]
    return features, labels, rng


def test_raw_logme_ranks_the_same_information_by_dimension_and_scale():
    features, labels, rng = teacher_features()
    weaker = features + 0.8 * rng.standard_normal(features.shape)  # strictly less information
    padded = np.hstack([features, rng.standard_normal((len(labels), 248))])  # same information, 256-d
    teachers = {"teacher": features, "weaker": weaker, "padded": padded, "rescaled": 1000 * features}
    raw = {name: logme(f, labels) for name, f in teachers.items()}
    # Raw LogME scores the same information lower when it comes with noise
    # dimensions or at a larger scale, enough to rank the weaker teacher first.
    assert raw["teacher"] - raw["padded"] > 0.1
    assert raw["teacher"] - raw["rescaled"] > 0.03
    assert raw["weaker"] > raw["padded"]
    # Projected to the same 8 principal dimensions at unit total variance, the
    # padded teacher ranks above the weaker one and the scale no longer counts.
    prepared = {name: logme(prepare_features(f, "pca", dim=8), labels) for name, f in teachers.items()}
    assert prepared["padded"] > prepared["weaker"] + 0.01
    assert prepared["rescaled"] == pytest.approx(prepared["teacher"], rel=1e-9)


@pytest.mark.parametrize("name", [n for n in METRICS.names() if METRICS.get(n).needs == "features"])
def test_pca_prepared_scores_ignore_rescaling_and_rotation(name):
    features, labels, rng = teacher_features(seed=1, n=120)
    features = np.hstack([features, rng.standard_normal((120, 24))])
    rotation = ortho_group.rvs(32, random_state=2)
    moved = 250.0 * features @ rotation + 3.0
    prepared, prepared_moved = prepare_features(features, "pca", dim=16), prepare_features(moved, "pca", dim=16)
    np.testing.assert_allclose(prepared_moved, prepared, atol=1e-9)
    original = compute_metric(name, prepared, labels=labels)
    assert compute_metric(name, prepared_moved, labels=labels) == pytest.approx(original, rel=1e-7, abs=1e-10)


@pytest.mark.parametrize(("n", "d", "dim", "expected"), [(50, 20, 8, 8), (50, 20, 64, 20), (10, 40, 32, 9)])
def test_pca_has_min_of_dim_samples_and_features_components_of_unit_total_variance(n, d, dim, expected):
    features = np.random.default_rng(3).standard_normal((n, d)) * np.arange(1, d + 1)
    prepared = prepare_features(features, "pca", dim=dim)
    assert prepared.shape == (n, expected)
    assert np.allclose(prepared.mean(axis=0), 0)
    assert prepared.var(axis=0).sum() == pytest.approx(1.0)
    variances = prepared.var(axis=0)
    assert np.all(np.diff(variances) <= 1e-12)  # strongest component first, not whitened
    assert np.allclose(np.cov(prepared, rowvar=False, bias=True), np.diag(variances), atol=1e-12)


def test_standardize_and_l2():
    features = np.random.default_rng(4).standard_normal((30, 5)) * [1, 10, 100, 0, 3] + 7
    standardized = prepare_features(features, "standardize")
    assert np.allclose(standardized.mean(axis=0), 0)
    assert np.allclose(standardized.std(axis=0), [1, 1, 1, 0, 1])
    assert np.allclose(np.linalg.norm(prepare_features(features, "l2"), axis=1), 1)
    assert np.array_equal(prepare_features(features, "none"), features)


def test_invalid_preparation_is_explained():
    with pytest.raises(XDistillError, match="Did you mean 'pca'") as error:
        prepare_features(np.full((4, 3), np.nan), "pcaa", dim=0)
    assert "3 problems" in str(error.value)
    with pytest.raises(XDistillError, match="identical rows"):
        prepare_features(np.ones((5, 3)), "pca")
