"""Put teachers' features on the same footing before scoring them.

Teachers of a zoo differ in feature dimension (a 128-d CNN, a 256-d MLP, a
192-d ViT) and in scale, and most transferability metrics are sensitive to
both: LogME, H-score, TransRate and kNN score the same information differently
when it comes with extra noise dimensions, LogME also when it is rescaled
(through its 1e-5 guards), and GBC floors variances at an absolute 1e-4. Ranking teachers by raw
scores therefore partly ranks their dimension and scale. ``prepare_features`` applies one documented normalisation to every
teacher alike; the metrics themselves stay as their papers define them.

Methods (``method=``):

- ``"none"``: the features unchanged (as float64).
- ``"standardize"``: each dimension centred and divided by its standard
  deviation (1/N); constant dimensions become 0.
- ``"pca"`` (default): centred, projected onto the top ``min(dim, N-1, D)``
  principal components, and scaled so that the total variance (sum of the
  components' 1/N variances) is 1. Every teacher then has the same dimension
  and total variance, and the result does not change when the input features
  are rescaled, rotated or given in another basis. The components keep their
  relative variances (no whitening), so directions of little variance are not
  amplified to the weight of the main ones. Each component's sign is fixed so
  that its largest-magnitude score is positive.
- ``"l2"``: each row divided by its euclidean norm (zero rows stay zero);
  removes global scale, keeps the dimension.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xdistill.errors import XDistillError, join_problems
from xdistill.registry import Registry
from xdistill.select._checks import feature_problems, option_problems

PREPARATIONS: Registry[Callable[[np.ndarray, int], np.ndarray]] = Registry("feature preparation")


@PREPARATIONS.register("none")
def _unchanged(features: np.ndarray, dim: int) -> np.ndarray:
    return features


@PREPARATIONS.register("standardize")
def _standardize(features: np.ndarray, dim: int) -> np.ndarray:
    centred = features - features.mean(axis=0)
    scale = centred.std(axis=0)
    return centred / np.where(scale > 0, scale, 1.0)


@PREPARATIONS.register("pca")
def _principal_components(features: np.ndarray, dim: int) -> np.ndarray:
    n, d = features.shape
    components = min(dim, n - 1, d)
    centred = features - features.mean(axis=0)
    if d <= n:
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
        top = np.argsort(eigenvalues)[::-1][:components]
        scores = centred @ eigenvectors[:, top]
    else:
        eigenvalues, eigenvectors = np.linalg.eigh(centred @ centred.T)
        top = np.argsort(eigenvalues)[::-1][:components]
        scores = eigenvectors[:, top] * np.sqrt(np.clip(eigenvalues[top], 0.0, None))
    total_variance = np.sum(scores**2) / n
    if total_variance <= 0:
        raise XDistillError(
            "prepare_features(method='pca') needs features that vary across samples. "
            "Got identical rows for every sample. Check the teacher's feature hook."
        )
    largest = scores[np.argmax(np.abs(scores), axis=0), np.arange(components)]
    return scores * np.where(largest < 0, -1.0, 1.0) / np.sqrt(total_variance)


@PREPARATIONS.register("l2")
def _unit_rows(features: np.ndarray, dim: int) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def prepare_features(features, method: str = "pca", dim: int = 32) -> np.ndarray:
    """Normalise one teacher's ``features [N, D]`` for comparison with other
    teachers; returns float64 ``[N, D']`` (D' = min(dim, N-1, D) for "pca",
    else D). ``method`` is one of "none", "standardize", "pca", "l2" (see the
    module docstring); ``dim`` is used by "pca" only. Apply the same method and
    dim to every teacher being ranked.
    """
    features = np.asarray(features)
    problems = feature_problems(features)
    if method not in PREPARATIONS:
        problems.append(PREPARATIONS.unknown_message(method))
    problems += option_problems("prepare_features", "dim", dim, integer=True, minimum=1)
    if not problems and len(features) < 2:
        problems.append(f"features must have at least 2 samples. Got {len(features)}.")
    if problems:
        raise XDistillError(join_problems(problems, "Invalid inputs to prepare_features"))
    return PREPARATIONS.get(method)(features.astype(np.float64), dim)
