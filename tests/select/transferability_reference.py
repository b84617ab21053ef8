"""Slow, literal reference implementations of the transferability metrics,
written from the papers' formulas independently of xdistill.select: explicit
per-class loops, full D x D matrices, explicit inverses and determinants.

Where xdistill follows an official implementation's convention rather than the
paper's formula, the convention is written out here too, with a comment.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import StratifiedKFold


def reference_logme(features, labels):
    """You et al. 2021: the log evidence maximised by the fixed-point updates
    alpha = gamma / m^T m, beta = (n - gamma) / ||F m - y||^2."""
    n, d = features.shape
    gram = features.T @ features
    eigenvalues = np.clip(np.linalg.eigvalsh(gram), 0.0, None)  # all D eigenvalues of F^T F
    rank = np.linalg.matrix_rank(features)
    evidences = []
    for c in range(labels.max() + 1):
        y = (labels == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            A = alpha * np.eye(d) + beta * gram
            m = beta * np.linalg.solve(A, features.T @ y)
            gamma = sum(beta * lam / (alpha + beta * lam) for lam in eigenvalues)
            m_norm2 = m @ m
            residual2 = np.sum((features @ m - y) ** 2)
            # The official code adds 1e-5 to both denominators.
            new_alpha = gamma / (m_norm2 + 1e-5)
            new_beta = (n - gamma) / (residual2 + 1e-5)
            converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) <= 1e-3
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        log_det_A = np.linalg.slogdet(alpha * np.eye(d) + beta * gram)[1]
        evidence = (
            n / 2 * np.log(beta)
            + d / 2 * np.log(alpha)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * residual2
            - alpha / 2 * m_norm2
            - log_det_A / 2
        )
        # The official code sums log|A| over the non-zero singular values only:
        # the D - rank zero eigenvalues of F^T F, log(alpha) each, are left out.
        evidence += (d - rank) / 2 * np.log(alpha)
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def reference_leep(probs, labels):
    """Nguyen et al. 2020: mean log-likelihood of the expected empirical predictor."""
    n, source_classes = probs.shape
    joint = np.zeros((labels.max() + 1, source_classes))
    for i in range(n):
        for z in range(source_classes):
            joint[labels[i], z] += probs[i, z] / n
    marginal = joint.sum(axis=0)
    total = 0.0
    for i in range(n):
        eep = sum(
            joint[labels[i], z] / marginal[z] * probs[i, z]
            for z in range(source_classes)
            if marginal[z] > 0
        )
        total += np.log(eep)
    return total / n


def reference_nce(source_labels, labels):
    """Tran et al. 2019: -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z)."""
    n = len(labels)
    pair_counts = Counter(zip(source_labels.tolist(), labels.tolist()))
    source_counts = Counter(source_labels.tolist())
    return sum(
        count / n * np.log(count / source_counts[z]) for (z, _), count in pair_counts.items()
    )


def _class_mean_per_sample(features, labels):
    g = np.zeros_like(features)
    for c in range(labels.max() + 1):
        g[labels == c] = features[labels == c].mean(axis=0)
    return g


def _pinv(matrix, n):
    # Singular values below max(N, D) * eps * the largest count as zero.
    return np.linalg.pinv(matrix, rtol=max(n, len(matrix)) * np.finfo(np.float64).eps)


def reference_hscore(features, labels):
    """Bao et al. 2019: tr(cov(f)^-1 cov(E[f | y]))."""
    cov_f = np.cov(features, rowvar=False)
    cov_g = np.cov(_class_mean_per_sample(features, labels), rowvar=False)
    return float(np.trace(_pinv(cov_f, len(features)) @ cov_g))


def reference_hscore_regularized(features, labels):
    """Ibrahim et al. 2022: tr(cov_LW(f)^-1 (1 - delta) cov(E[f | y]))."""
    estimator = LedoitWolf().fit(features)
    cov_g = np.cov(_class_mean_per_sample(features, labels), rowvar=False)
    inverse = _pinv(estimator.covariance_, len(features))
    return float(np.trace(inverse @ ((1 - estimator.shrinkage_) * cov_g)))


def reference_gbc(features, labels, gaussian="spherical"):
    """Pandy et al. 2022: -sum_{i != j} exp(-D_B(i, j)), D_B the Bhattacharyya distance."""
    means, variances = [], []
    for c in range(labels.max() + 1):
        rows = features[labels == c]
        means.append(rows.mean(axis=0))
        variances.append(np.maximum(((rows - rows.mean(axis=0)) ** 2).mean(axis=0), 1e-4))
    total = 0.0
    for i in range(len(means)):
        for j in range(len(means)):
            if i == j:
                continue
            diff = means[i] - means[j]
            if gaussian == "diagonal":
                cov_i, cov_j = np.diag(variances[i]), np.diag(variances[j])
                cov = (cov_i + cov_j) / 2
                log_ratio = np.linalg.slogdet(cov)[1] - (
                    np.linalg.slogdet(cov_i)[1] + np.linalg.slogdet(cov_j)[1]
                ) / 2
                distance = diff @ np.linalg.inv(cov) @ diff / 8 + log_ratio / 2
            else:
                # The official code's spherical Gaussian: a scalar variance s per
                # class, its log term taken once (not D times).
                s_i, s_j = variances[i].mean(), variances[j].mean()
                s = (s_i + s_j) / 2
                distance = diff @ diff / s / 8 + np.log(s / np.sqrt(s_i * s_j)) / 2
            total += np.exp(-distance)
    return -total


def reference_transrate(features, labels, eps=1e-4):
    """Huang et al. 2022, coding rates as the Transfer-Learning-Library computes them."""

    def coding_rate(z):
        n, d = z.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]

    z = features - features.mean(axis=0)
    class_rates = [coding_rate(z[labels == c]) for c in range(labels.max() + 1)]
    return coding_rate(z) - np.mean(class_rates)


def reference_knn_loo_accuracy(features, labels, k=1):
    correct = 0
    for i in range(len(features)):
        distances = [np.linalg.norm(features[i] - features[j]) if j != i else np.inf for j in range(len(features))]
        nearest = np.argsort(distances, kind="stable")[:k]
        votes = Counter(labels[nearest].tolist())
        best = max(votes.values())
        prediction = next(labels[j] for j in nearest if votes[labels[j]] == best)
        correct += prediction == labels[i]
    return correct / len(features)


def reference_linear_probe_accuracy(features, labels, folds=5, C=1.0, seed=0):
    """Ridge classifier, literally: per fold W = (Xc^T Xc + lambda I)^-1 Xc^T Yc on the centred training
    features and one-hot labels, lambda = mean training-feature variance / C; predict argmax((x - mean) W + ybar)."""
    order = sorted(range(len(features)), key=lambda i: (tuple(features[i]), labels[i]))
    features, labels = features[order], labels[order]
    folds = min(folds, min(Counter(labels.tolist()).values()))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    onehot = np.eye(labels.max() + 1)[labels]
    predictions = np.empty(len(labels), dtype=int)
    for train, test in splitter.split(features, labels):
        mean, ybar = features[train].mean(axis=0), onehot[train].mean(axis=0)
        xc, yc = features[train] - mean, onehot[train] - ybar
        penalty = np.mean(np.var(features[train], axis=0)) / C
        weights = np.linalg.solve(xc.T @ xc + penalty * np.eye(features.shape[1]), xc.T @ yc)
        predictions[test] = np.argmax((features[test] - mean) @ weights + ybar, axis=1)
    return float(np.mean(predictions == labels))


# key -> (registered metric name, options, reference of (features or probs, labels))
REFERENCES = {
    "logme": ("logme", {}, reference_logme),
    "leep": ("leep", {}, reference_leep),
    "nce": ("nce", {}, lambda probs, labels: reference_nce(np.argmax(probs, axis=1), labels)),
    "hscore": ("hscore", {}, reference_hscore),
    "hscore_regularized": ("hscore_regularized", {}, reference_hscore_regularized),
    "gbc": ("gbc", {}, reference_gbc),
    "gbc_diagonal": ("gbc", {"gaussian": "diagonal"}, lambda f, y: reference_gbc(f, y, "diagonal")),
    "transrate": ("transrate", {}, reference_transrate),
    "knn_loo_accuracy": ("knn_loo_accuracy", {}, reference_knn_loo_accuracy),
    "knn_loo_accuracy_k3": ("knn_loo_accuracy", {"k": 3}, lambda f, y: reference_knn_loo_accuracy(f, y, 3)),
    "linear_probe_accuracy": ("linear_probe_accuracy", {}, reference_linear_probe_accuracy),
}


def random_case(rng, n, d, num_classes, source_classes=7):
    """Labels with at least 2 samples per class (unbalanced), features with
    weak class structure at an arbitrary offset and scale and one nearly
    constant dimension, and teacher probabilities that depend on the labels."""
    labels = np.concatenate(
        [np.repeat(np.arange(num_classes), 2), rng.integers(0, num_classes, n - 2 * num_classes)]
    )
    labels = rng.permutation(labels)
    class_means = 0.7 * rng.standard_normal((num_classes, d))
    features = (rng.standard_normal((n, d)) + class_means[labels]) * rng.uniform(0.5, 3) + rng.normal(size=d)
    features[:, -1] = 1e-3 * features[:, -1]  # a nearly constant dimension, below GBC's variance floor
    logits = rng.standard_normal((n, source_classes)) + 2 * rng.standard_normal((num_classes, source_classes))[labels]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return {"features": features, "probs": probs, "labels": labels}


def reference_value(key, case):
    name, _, reference = REFERENCES[key]
    needs_probs = name in ("leep", "nce")
    return float(reference(case["probs"] if needs_probs else case["features"], case["labels"]))
