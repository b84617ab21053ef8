"""Generation metrics against values computed independently: the Fréchet distance in closed form (1-D by hand,
and through an eigendecomposition for small Gaussians), precision and recall on a literal example, invariances."""

from __future__ import annotations

import numpy as np
import pytest

from xdistill.kinds.generation.metrics import class_consistency, frechet_distance, precision_recall


def test_frechet_distance_one_dimension_by_hand():
    # real: mean 1, unbiased variance 2; fake: mean 3, variance 4 -> (1 - 3)^2 + (sqrt 2 - 2)^2 = 10 - 2 sqrt 8
    real, fake = np.array([[0.0], [2.0]]), np.array([[1.0], [3.0], [5.0]])
    assert frechet_distance(real, fake) == pytest.approx(10.0 - 2.0 * np.sqrt(8.0), rel=1e-12)


def independent_frechet(real: np.ndarray, fake: np.ndarray) -> float:
    """Tr (S_r S_f)^(1/2) as the sum of square roots of the eigenvalues of S_r^(1/2) S_f S_r^(1/2) (symmetric)."""
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    values, vectors = np.linalg.eigh(cov_r)
    root_r = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_r @ cov_f @ root_r)
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_an_eigendecomposition(seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))
    fake = rng.normal(loc=0.5, size=(300, 5)) @ rng.normal(size=(5, 5))
    # float64 matrix square roots of 5 x 5 products agree to about 1e-9 relative
    assert frechet_distance(real, fake) == pytest.approx(independent_frechet(real, fake), rel=1e-7)


def test_frechet_distance_is_zero_for_identical_sets_and_ignores_order():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(200, 4))
    assert abs(frechet_distance(real, real)) < 1e-8
    fake = rng.normal(size=(150, 4)) + 1.0
    assert frechet_distance(real, fake) == pytest.approx(frechet_distance(real[::-1], fake[rng.permutation(150)]), rel=1e-9)


def test_precision_and_recall_on_a_literal_example():
    # real 0, 1, 2, 10: radii to the 1st neighbour 1, 1, 1, 8. fake 0.5, 5, 20: radii 4.5, 4.5, 15.
    # precision: 0.5 (within 0's radius) and 5 (within 10's radius 8) are inside, 20 is not -> 2/3
    # recall: 0, 1, 2 lie within 4.5 of 0.5; 10 lies within 15 of 20 -> 1
    real, fake = np.array([[0.0], [1.0], [2.0], [10.0]]), np.array([[0.5], [5.0], [20.0]])
    assert precision_recall(real, fake, k=1) == pytest.approx({"precision": 2 / 3, "recall": 1.0}, abs=1e-12)
    # roles swapped: precision becomes recall of the reverse comparison
    assert precision_recall(fake, real, k=1) == pytest.approx({"precision": 1.0, "recall": 2 / 3}, abs=1e-12)


def test_precision_and_recall_with_k3_separate_disjoint_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 3))
    assert precision_recall(real, real + 100.0, k=3) == {"precision": 0.0, "recall": 0.0}
    same = precision_recall(real, real.copy(), k=3)
    assert same == {"precision": 1.0, "recall": 1.0}


def test_class_consistency_is_the_share_of_matching_labels():
    assert class_consistency(np.array([1, 2, 3, 3]), np.array([1, 2, 0, 3])) == 0.75
