"""Transferability metrics: how well a teacher's outputs on the target data
predict the target labels, without training anything on them.

Every metric is a plain function, numpy in and a float out, and higher always
means more transferable. Each is registered in ``METRICS`` with what it needs
from a teacher: its ``features [N, D]`` or its class probabilities
``probs [N, Cs]`` over its own (source) classes. Scores of different teachers
are only comparable once their features are put on the same footing; see
:func:`xdistill.select.prepare.prepare_features`.

The closed-form metrics live here; the fitted probes (kNN, logistic
regression) are in :mod:`xdistill.select.probes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.linalg

from xdistill.registry import Registry
from xdistill.select._checks import check_metric_inputs, matrix_problems, option_problems

Needs = Literal["features", "probs"]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: ``score(teacher_output, labels, **options) -> float``,
    with what it needs to be computable at all."""

    name: str
    score: Callable[..., float]
    needs: Needs  # "features": the teacher's features [N, D]; "probs": its probabilities [N, Cs]
    citation: str
    min_per_class: int = 1  # labeled samples every class needs
    min_in_one_class: int = 1  # labeled samples at least one class needs (held-out probes: 2)
    single_sample_class: str = ""  # what the metric does with a class of one labeled sample, after its name
    uses_reference: bool = False  # takes unlabeled features of the teacher as ``reference=`` (few labels)


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(name: str, needs: Needs, citation: str, min_per_class: int = 1,
                    min_in_one_class: int = 1, single_sample_class: str = "", uses_reference: bool = False) -> Callable:
    """Register the decorated ``score(teacher_output, labels, **options)`` in METRICS."""

    def add(score: Callable[..., float]) -> Callable[..., float]:
        METRICS.register(name, MetricSpec(name=name, score=score, needs=needs, citation=citation,
                                          min_per_class=min_per_class, min_in_one_class=min_in_one_class,
                                          single_sample_class=single_sample_class, uses_reference=uses_reference))
        return score

    return add


def compute_metric(name: str, features=None, probs=None, *, labels, reference_features=None,
                   **options) -> float | None:
    """Score one teacher with the metric registered as ``name``.

    Returns None when the teacher lacks what the metric needs (e.g. "leep" for
    a teacher without probabilities), so a whole zoo can be scored in one loop.
    ``reference_features [M, D]``, the teacher's features of unlabeled samples
    prepared like ``features``, go to the metrics that use them
    (``MetricSpec.uses_reference``). ``options`` go to the metric (e.g.
    ``gaussian="diagonal"`` for "gbc").
    """
    spec = METRICS.get(name)
    teacher_output = features if spec.needs == "features" else probs
    if teacher_output is None:
        return None
    if spec.uses_reference and reference_features is not None:
        options = {"reference": reference_features, **options}
    return float(spec.score(teacher_output, labels, **options))


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[labels]


# --- LogME -----------------------------------------------------------------

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


# --- Metrics of the teacher's predictions -------------------------------------


@register_metric("leep", needs="probs", citation="Nguyen et al., LEEP, ICML 2020",
                 single_sample_class="counts such a class once in the empirical joint P(y, z)")
def leep(source_probs, labels) -> float:
    """LEEP (Nguyen et al. 2020) of teacher probabilities ``source_probs [N, Cs]``
    over its source classes z for target ``labels [N]``. Returns a float <= 0.

    From the empirical joint P(y, z) = 1/N sum_i probs[i, z] [y_i = y] and the
    conditional P(y | z) = P(y, z) / P(z), LEEP = 1/N sum_i log sum_z P(y_i | z)
    probs[i, z], the mean log-likelihood of the "expected empirical predictor".
    Rows of probs are used as given (they must sum to 1 within 1e-3).
    """
    inputs = check_metric_inputs("leep", labels, probs=source_probs)
    probs, labels = inputs.probs, inputs.labels
    joint = _one_hot(labels, inputs.num_classes).T @ probs / len(labels)  # [C, Cs]
    marginal = joint.sum(axis=0)
    # A source class with P(z) = 0 has probs[:, z] = 0 everywhere, so its column never counts.
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected_likelihood = np.einsum("nz,nz->n", probs, conditional[labels])
    return float(np.mean(np.log(expected_likelihood)))


@register_metric("nce", needs="probs", citation="Tran et al., NCE, ICCV 2019",
                 single_sample_class="counts such a class once in the empirical joint")
def _nce_of_probs(source_probs, labels) -> float:
    """NCE with the teacher's predicted source class argmax(probs) as Z."""
    inputs = check_metric_inputs("nce", labels, probs=source_probs)
    return nce(np.argmax(inputs.probs, axis=1), inputs.labels)


def nce(source_labels, labels) -> float:
    """Negative conditional entropy -H(Y | Z) (Tran et al. 2019) of target
    ``labels [N]`` given source labels ``source_labels [N]`` (any integer ids,
    e.g. a teacher's argmax predictions). Natural log; returns a float <= 0.

    H(Y | Z) = -sum_{y,z} P(y, z) log(P(y, z) / P(z)) from the empirical joint
    of (y, z) over the N samples.
    """
    inputs = check_metric_inputs("nce", labels, source_labels=source_labels)
    _, source = np.unique(inputs.source_labels, return_inverse=True)
    counts = np.zeros((source.max() + 1, inputs.num_classes))
    np.add.at(counts, (source, inputs.labels), 1.0)
    joint = counts / len(source)
    marginal = joint.sum(axis=1, keepdims=True)
    seen = joint > 0
    return float(np.sum(joint[seen] * np.log((joint / marginal)[seen])))


# --- H-score ---------------------------------------------------------------


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


# --- Class separability and coding rate --------------------------------------

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


def _coding_rate(centred: np.ndarray, eps: float) -> float:
    """0.5 logdet(I_D + Z^T Z / (n eps)) of Z [n, D], via the smaller Gram matrix
    (logdet(I + Z^T Z a) = logdet(I + Z Z^T a))."""
    n, d = centred.shape
    gram = centred.T @ centred if d <= n else centred @ centred.T
    matrix = gram / (n * eps)
    matrix[np.diag_indices(len(matrix))] += 1.0
    return 0.5 * float(np.linalg.slogdet(matrix)[1])


@register_metric("transrate", needs="features", citation="Huang et al., TransRate, ICML 2022",
                 single_sample_class="takes the coding rate of the single row of such a class")
def transrate(features, labels, eps: float = 1e-4) -> float:
    """TransRate (Huang et al. 2022) of ``features [N, D]``, in the formulation of
    the Transfer-Learning-Library (``tllib.ranking.transrate``):

        TransRate = R(Z) - 1/C sum_c R(Z_c),  R(Z) = 1/2 logdet(I_D + Z^T Z / (n eps))

    where Z is the features centred by their overall mean, Z_c its rows of class
    c (not re-centred) and n the number of rows of the matrix at hand. ``eps``
    stands for the squared distortion and enters as 1/(n eps), with no factor
    of the dimension; the class rates are averaged uniformly (1/C), not weighted
    by class frequency. Returns a float; higher is better.
    """
    problems = option_problems("transrate", "eps", eps, minimum=0, strict=True)
    inputs = check_metric_inputs("transrate", labels, features=features, parameter_problems=problems)
    centred = inputs.features - inputs.features.mean(axis=0)
    class_rates = [_coding_rate(centred[inputs.labels == c], eps) for c in range(inputs.num_classes)]
    return _coding_rate(centred, eps) - float(np.mean(class_rates))
