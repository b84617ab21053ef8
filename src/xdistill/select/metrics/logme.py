"""LogME (You et al., ICML 2021): the evidence of a Bayesian linear model of the labels on the features."""

from __future__ import annotations

import numpy as np

from xdistill.select._checks import check_metric_inputs
from xdistill.select.metrics import _one_hot, register_metric


LOGME_MAX_ITERATIONS = 11  # fixed-point steps per class, as in the official code
LOGME_TOLERANCE = 1e-3  # stop once alpha/beta changes by at most this, relatively
LOGME_EPSILON = 1e-5  # guards the alpha and beta updates against division by 0
LOGME_MIN_SINGULAR_VALUE = 1e-10  # N > D: singular values at or below are dropped


def _feature_spectrum(features: np.ndarray, targets: np.ndarray):
    """Squared singular values ``sigma [k]`` of features [N, D] and the targets'
    coordinates ``u^T targets [k, C]`` on the left singular vectors.

    Eigen-decomposes the Gram matrix of the smaller side (one decomposition for
    all classes). Like the official code, N > D keeps singular values above
    LOGME_MIN_SINGULAR_VALUE and N <= D keeps all N of them.
    """
    n, d = features.shape
    if n > d:
        sigma, v = np.linalg.eigh(features.T @ features)
        kept = np.sqrt(np.clip(sigma, 0.0, None)) > LOGME_MIN_SINGULAR_VALUE
        sigma, v = sigma[kept], v[:, kept]
        coordinates = (v.T @ (features.T @ targets)) / np.sqrt(sigma)[:, None]
    else:
        sigma, u = np.linalg.eigh(features @ features.T)
        coordinates = u.T @ targets
    return np.clip(sigma, 0.0, None), coordinates


def _logme_class_evidence(sigma: np.ndarray, coordinates: np.ndarray, target_norm2: float, n: int, d: int) -> float:
    """Maximised log evidence / N of one target vector (You et al. 2021, with the
    fixed-point updates of their arXiv 2110.10545 algorithm).

    With t = alpha / beta the posterior mean is m = (t I + F^T F)^-1 F^T y, so
    ||m||^2 and ||F m - y||^2 are sums over the spectrum.
    """
    x2 = coordinates**2
    outside_span = target_norm2 - x2.sum()  # ||y||^2 off the span of F
    alpha, beta = 1.0, 1.0
    for _ in range(LOGME_MAX_ITERATIONS):
        ratio = alpha / beta
        gamma = np.sum(sigma / (sigma + ratio))  # effective number of parameters
        weight_norm2 = np.sum(sigma * x2 / (sigma + ratio) ** 2)
        residual2 = np.sum(x2 * (ratio / (sigma + ratio)) ** 2) + outside_span
        alpha = gamma / (weight_norm2 + LOGME_EPSILON)
        beta = (n - gamma) / (residual2 + LOGME_EPSILON)
        if abs(alpha / beta - ratio) / ratio <= LOGME_TOLERANCE:
            break
    evidence = (
        d * np.log(alpha)
        + n * np.log(beta)
        - np.sum(np.log(alpha + beta * sigma))
        - beta * residual2
        - alpha * weight_norm2
        - n * np.log(2 * np.pi)
    ) / 2
    return evidence / n


@register_metric("logme", needs="features", citation="You et al., LogME, ICML 2021",
                 single_sample_class="fits the one-hot target of such a class like any other")
def logme(features, labels) -> float:
    """LogME (You et al. 2021): mean over classes of the maximised log evidence of
    a Bayesian linear regression from ``features [N, D]`` to each class's one-hot
    target, divided by N. Returns a float; higher is better.

    Follows the official code's default fit, the fixed-point iteration on
    alpha (prior precision) and beta (noise precision): at most 11 steps from
    alpha = beta = 1, stopping once alpha/beta changes by <= 1e-3 relatively,
    with the updates' 1e-5 guards. The evidence uses the last step's alpha, beta
    and the posterior mean of the step before, as the official code does. One
    eigen-decomposition of the features is shared by all classes.

    Also as in the official code, log|A| sums over the kept singular values
    only (all min(N, D) when N <= D; those > 1e-10 when N > D), so when the
    features' rank k is below D the score exceeds the paper's evidence by
    (D - k) / (2N) * log(alpha). Project features to fewer than N dimensions
    (``prepare_features``) to compare teachers on equal terms.
    """
    inputs = check_metric_inputs("logme", labels, features=features)
    n, d = inputs.features.shape
    targets = _one_hot(inputs.labels, inputs.num_classes)
    sigma, coordinates = _feature_spectrum(inputs.features, targets)
    target_norm2 = targets.sum(axis=0)  # ||y_c||^2 of a 0/1 vector is its count
    evidences = [
        _logme_class_evidence(sigma, coordinates[:, c], target_norm2[c], n, d)
        for c in range(inputs.num_classes)
    ]
    return float(np.mean(evidences))
