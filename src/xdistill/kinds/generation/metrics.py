"""The generation kind's sample-quality metrics, plain functions over feature vectors.

Features come from the task's digits classifier (``judge.py``), never from an ImageNet network, so the
distance below is a Fréchet distance in that classifier's feature space: it compares runs on one task
and is not comparable with FID figures elsewhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to real [N, D] and fake [M, D] features (Heusel et al. 2017):

        |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))

    with unbiased covariances, float64, and the real part of the matrix square root (an imaginary part
    from round-off is dropped; a singular product gets a small ridge first, as is usual).
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    with warnings.catch_warnings():  # a singular product is handled below, not reported
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_r @ cov_f)
    if not np.isfinite(root).all():
        ridge = np.eye(len(cov_r)) * 1e-6
        root = linalg.sqrtm((cov_r + ridge) @ (cov_f + ridge))
    root = np.real(root)
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2.0 * np.trace(root))


def _kth_neighbour_radii(features: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance [N] from each row to its k-th nearest other row."""
    radii = []
    for i in range(0, len(features), chunk):
        d = torch.cdist(features[i:i + chunk], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st smallest is the row itself (distance 0)
    return torch.cat(radii)


def _inside_manifold(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """For each query row, whether it lies within radius of some support row (bool [M])."""
    inside = []
    for i in range(0, len(queries), chunk):
        inside.append((torch.cdist(queries[i:i + chunk], support) <= radii[None]).any(dim=1))
    return torch.cat(inside)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of fake [M, D] against real [N, D] features.

    Each real sample's hypersphere has the radius to its k-th nearest real neighbour; precision is the share of
    fake samples inside the union of the real hyperspheres. Recall swaps the roles: the share of real samples
    inside the union of the fake samples' hyperspheres (radii from the fake samples' own k-th neighbours).
    """
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    precision = _inside_manifold(f, r, _kth_neighbour_radii(r, k)).double().mean().item()
    recall = _inside_manifold(r, f, _kth_neighbour_radii(f, k)).double().mean().item()
    return {"precision": float(precision), "recall": float(recall)}


def class_consistency(predicted: np.ndarray, conditioned: np.ndarray) -> float:
    """Share of samples whose class, as the task's classifier predicts it, is the label they were drawn for."""
    predicted, conditioned = np.asarray(predicted), np.asarray(conditioned)
    return float((predicted == conditioned).mean())
