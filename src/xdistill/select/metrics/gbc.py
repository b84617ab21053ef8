"""GBC (Pandy et al., CVPR 2022): class separability from Gaussian Bhattacharyya coefficients."""

from __future__ import annotations

import numpy as np

from xdistill.select._checks import check_metric_inputs, matrix_problems
from xdistill.select.metrics import _one_hot, register_metric


GBC_MIN_VARIANCE = 1e-4  # per-dimension class variances are floored here, as in the official code


GBC_REFERENCE_MAX_SAMPLES = 4096  # unlabeled samples, evenly spaced, that estimate a one-sample class's variance


def _exemplar_variance(exemplars: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Within-class variance [D] estimated around one exemplar per class ``[C, D]``
    from unlabeled ``reference [M, D]`` features: half the mean squared deviation
    of each reference sample from its nearest exemplar (a sample and an exemplar
    of the same class differ by twice the class variance)."""
    if len(reference) > GBC_REFERENCE_MAX_SAMPLES:
        reference = reference[np.linspace(0, len(reference) - 1, GBC_REFERENCE_MAX_SAMPLES).astype(np.intp)]
    distances = (
        np.einsum("md,md->m", reference, reference)[:, None]
        - 2 * reference @ exemplars.T
        + np.einsum("cd,cd->c", exemplars, exemplars)[None, :]
    )
    nearest = exemplars[np.argmin(distances, axis=1)]
    return ((reference - nearest) ** 2).mean(axis=0) / 2


@register_metric("gbc", needs="features", citation="Pandy et al., GBC, CVPR 2022", uses_reference=True,
                 single_sample_class="gives such a class a shared variance (pooled over the other classes, or "
                 "when every class has one, of unlabeled features around their nearest labeled one)")
def gbc(features, labels, gaussian: str = "spherical", reference=None) -> float:
    """Gaussian Bhattacharyya Coefficient (Pandy et al. 2022) of ``features [N, D]``,
    as the official code computes it. Returns a float <= 0; higher is better.

    Each class c is a Gaussian with mean mu_c and per-dimension variance v_c
    (1/n_c normalised, floored at 1e-4); ``gaussian="spherical"`` replaces v_c
    by its mean over dimensions, a scalar s_c. For classes i != j, with
    v = (v_i + v_j) / 2, the Bhattacharyya distance is

        D_B = 1/8 sum_d (mu_i - mu_j)_d^2 / v_d
              + 1/2 sum (log v - 1/2 log v_i - 1/2 log v_j)

    and GBC = -sum_{i != j} exp(-D_B) (each unordered pair counted twice).
    For "diagonal" this is the paper's Bhattacharyya distance between Gaussians
    with diagonal covariances. For "spherical" the official code, and so this
    function, takes the log term once for the scalar variances, where that
    distance for covariances s I would take it D times.

    The paper's pipeline first reduces features with PCA to 64 dimensions;
    that belongs to feature preparation (``prepare_features(features, "pca",
    dim=64)``) and is not done here.

    Few labels: a class with a single sample has no variance of its own (the
    floor alone would make it look perfectly separated). It takes the pooled
    within-class variance of the classes with at least 2 samples (squared
    deviations from their class means over those samples, 1/n normalised).
    When every class has one sample, the labels say nothing about the spread
    within a class: the unlabeled ``reference [M, D]`` features of the same
    teacher (same preparation) estimate it, as half the mean squared deviation
    of each reference sample from its nearest labeled sample (at most 4096
    evenly spaced reference samples). Without a reference the variance of the
    labeled features stands in; then every pair's mean distance term is the same
    for any features, and only the evenness of the spacing is scored. With at
    least 2 samples in every class the score is the official one and
    ``reference`` is not used.
    """
    problems = []
    if gaussian not in ("spherical", "diagonal"):
        problems.append(f"The 'gaussian' of gbc must be 'spherical' or 'diagonal'. Got {gaussian!r}.")
    if reference is not None:
        reference = np.asarray(reference)
        problems += matrix_problems(reference, "reference")
        if not problems and np.ndim(features) == 2 and reference.shape[1] != np.shape(features)[1]:
            problems.append(
                f"reference must have the features' {np.shape(features)[1]} columns. Got shape {reference.shape}."
            )
    inputs = check_metric_inputs("gbc", labels, features=features, parameter_problems=problems)
    if reference is not None:
        reference = reference.astype(np.float64)
    features, labels, num_classes = inputs.features, inputs.labels, inputs.num_classes
    membership = _one_hot(labels, num_classes)
    counts = membership.sum(axis=0)[:, None]
    means = membership.T @ features / counts
    squared_deviations = (features - means[labels]) ** 2
    variances = membership.T @ squared_deviations / counts
    single = counts[:, 0] < 2
    repeated = ~single[labels]  # samples of classes with >= 2 samples
    if repeated.any():
        variances[single] = squared_deviations[repeated].mean(axis=0)
    elif reference is not None:
        variances[:] = _exemplar_variance(features, reference)  # every class has one sample: features are exemplars
    else:
        variances[:] = features.var(axis=0)
    variances = np.maximum(variances, GBC_MIN_VARIANCE)
    if gaussian == "spherical":
        variances = variances.mean(axis=1, keepdims=True)
    log_variances = np.log(variances)
    total_coefficient = 0.0
    for c in range(num_classes):
        average = (variances[c] + variances) / 2
        mean_term = np.sum((means[c] - means) ** 2 / average, axis=1) / 8
        log_term = np.sum(np.log(average) - (log_variances[c] + log_variances) / 2, axis=1) / 2
        coefficients = np.exp(-(mean_term + log_term))
        total_coefficient += coefficients.sum() - coefficients[c]
    return float(-total_coefficient)
