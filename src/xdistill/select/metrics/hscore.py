"""H-score (Bao et al., ICIP 2019) and its shrinkage variant (Ibrahim et al. 2022)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from xdistill.select._checks import check_metric_inputs
from xdistill.select.metrics import _one_hot, register_metric


def _class_mean_offsets(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``B [C, D]`` with B^T B = cov(E[f | y]) (the N-1 normalised covariance of
    each sample's class mean), rows sqrt(n_c / (N-1)) (mu_c - mu)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    class_means = (_one_hot(labels, num_classes).T @ features) / counts[:, None]
    offsets = class_means - features.mean(axis=0)
    return offsets * np.sqrt(counts / (len(labels) - 1))[:, None]


def _trace_of_pinv_product(covariance: np.ndarray, between: np.ndarray, n: int) -> float:
    """tr(pinv(covariance) between^T between).

    Eigenvalues <= max(N, D) * eps * the largest eigenvalue count as zero
    (numpy's matrix_rank tolerance), so rounding noise of a singular covariance
    is not inverted. A covariance of full rank takes the faster Cholesky route.
    """
    cutoff = max(n, len(covariance)) * np.finfo(np.float64).eps
    eigenvalues = np.linalg.eigvalsh(covariance)
    if eigenvalues.min() > cutoff * eigenvalues.max():
        try:
            factor = np.linalg.cholesky(covariance)
            return float(np.sum(scipy.linalg.solve_triangular(factor, between.T, lower=True) ** 2))
        except np.linalg.LinAlgError:
            pass
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    kept = eigenvalues > cutoff * eigenvalues.max()
    projected = between @ eigenvectors[:, kept]
    return float(np.sum(projected**2 / eigenvalues[kept]))


@register_metric("hscore", needs="features", citation="Bao et al., H-score, ICIP 2019",
                 single_sample_class="takes the one sample of such a class as its class mean")
def hscore(features, labels) -> float:
    """H-score (Bao et al. 2019): tr(cov(f)^+ cov(E[f | y])) of ``features [N, D]``.

    Both covariances are normalised by N-1 and the inverse is a pseudo-inverse,
    as in the widely used reference implementation. That one calls
    np.linalg.pinv(rcond=1e-15); here eigenvalues below max(N, D) * eps * the
    largest eigenvalue count as zero. The two agree whenever cov(f) is well
    conditioned; for a singular cov(f) (e.g. N <= D) this keeps rounding noise
    from being inverted. Returns a float in [0, C-1] (exactly C-1 when the
    classes are linearly separable in a space of dimension < N).
    """
    inputs = check_metric_inputs("hscore", labels, features=features)
    features, labels = inputs.features, inputs.labels
    centred = features - features.mean(axis=0)
    covariance = centred.T @ centred / (len(labels) - 1)
    between = _class_mean_offsets(features, labels, inputs.num_classes)
    return _trace_of_pinv_product(covariance, between, len(labels))


def _ledoit_wolf(centred: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of centred [N, D] data and its shrinkage delta.

    Computes what sklearn.covariance.LedoitWolf().fit(features) returns as
    ``covariance_`` and ``shrinkage_`` (Ledoit & Wolf 2004, with the 1/N
    covariance S), from one Gram matrix instead of that class's three:
    (1 - delta) S + delta mu I with mu = tr(S) / D.
    """
    n, d = centred.shape
    sample_cov = centred.T @ centred / n
    mu = np.trace(sample_cov) / d
    if d == 1:
        return sample_cov, 0.0
    dispersion = np.sum(sample_cov**2) / d - mu**2  # ||S - mu I||_F^2 / D
    row_norms4 = np.sum(np.einsum("ij,ij->i", centred, centred) ** 2)
    estimation_error = (row_norms4 / n - np.sum(sample_cov**2)) / (d * n)
    estimation_error = min(estimation_error, dispersion)
    shrinkage = 0.0 if estimation_error == 0 or dispersion <= 0 else estimation_error / dispersion
    shrunk = (1 - shrinkage) * sample_cov
    shrunk[np.diag_indices(d)] += shrinkage * mu
    return shrunk, float(shrinkage)


@register_metric("hscore_regularized", needs="features", citation="Ibrahim et al. 2022, shrinkage-based H-score",
                 single_sample_class="takes the one sample of such a class as its class mean")
def hscore_regularized(features, labels) -> float:
    """Shrinkage-based H-score (Ibrahim et al. 2022) of ``features [N, D]``:

        tr( Sigma_LW^-1 (1 - delta) cov(E[f | y]) )

    where Sigma_LW and delta are the Ledoit-Wolf covariance and shrinkage of the
    features exactly as sklearn.covariance.LedoitWolf computes them
    ((1 - delta) S + delta tr(S)/D I, with S normalised by N), and
    cov(E[f | y]) is normalised by N-1. The (1 - delta) factor shrinks the
    between-class covariance like the feature covariance. Sigma_LW is inverted
    with the same pseudo-inverse as :func:`hscore` (it is positive definite
    whenever delta > 0). Returns a float; higher is better.
    """
    inputs = check_metric_inputs("hscore_regularized", labels, features=features)
    features, labels = inputs.features, inputs.labels
    covariance, shrinkage = _ledoit_wolf(features - features.mean(axis=0))
    between = _class_mean_offsets(features, labels, inputs.num_classes) * np.sqrt(1 - shrinkage)
    return _trace_of_pinv_product(covariance, between, len(labels))
