"""Fitted probes as transferability metrics: the accuracy a simple predictor
reaches on the target labels from a teacher's features, measured on samples it
did not see. Slower than the closed-form metrics, but their values read
directly as accuracies.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from sklearn.model_selection import StratifiedKFold

from xdistill.select._checks import check_metric_inputs, option_problems
from xdistill.select.metrics import register_metric

NEIGHBOUR_BLOCK = 1024  # rows per block of the pairwise-distance computation (memory ~ block^2)
CANDIDATES_BEYOND_K = 2  # neighbour candidates kept per sample from float32 distances, beyond k
# A held-out sample can only be predicted right when another sample of its class is left to learn from.
HELD_OUT_CLASS_SIZE = 2


def _smallest_positions(distance: np.ndarray, k: int) -> np.ndarray:
    """Column positions [b, k] of the k smallest values in each row of distance [b, m]."""
    if k > 4:  # beyond a few, one partition beats repeated minima
        return np.argpartition(distance, k - 1, axis=1)[:, :k]
    remaining = np.array(distance, order="C")  # a row-major copy: minima along strided rows are slow
    positions = np.empty((len(remaining), k), dtype=np.intp)
    for j in range(k):
        positions[:, j] = np.argmin(remaining, axis=1)
        remaining[np.arange(len(remaining)), positions[:, j]] = np.inf
    return positions


def _merge_nearest(best_distance, best_index, distance, index, k):
    """Keep the k smallest of the current best [b, k] and new candidates [b, m]
    with sample indices ``index [m]``."""
    positions = _smallest_positions(distance, min(k, distance.shape[1]))
    distance = np.concatenate([best_distance, np.take_along_axis(distance, positions, axis=1)], axis=1)
    index = np.concatenate([best_index, index[positions]], axis=1)
    order = np.lexsort((index, distance), axis=1)[:, :k]  # ties go to the lower sample index
    return np.take_along_axis(distance, order, axis=1), np.take_along_axis(index, order, axis=1)


def _blocked_nearest(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest squared distances [N, k] from each sample to the others,
    computed in the dtype of ``features``, and their indices [N, k].

    Squared distances come from ||a||^2 + ||b||^2 - 2 a.b in blocks; each pair
    of blocks is multiplied once and serves both blocks, halving the work.
    """
    n = len(features)
    norms = np.einsum("ij,ij->i", features, features)
    sample_index = np.arange(n)
    best_distance = np.full((n, k), np.inf)
    best_index = np.zeros((n, k), dtype=np.intp)
    for row_start in range(0, n, NEIGHBOUR_BLOCK):
        rows = slice(row_start, min(row_start + NEIGHBOUR_BLOCK, n))
        for column_start in range(row_start, n, NEIGHBOUR_BLOCK):
            columns = slice(column_start, min(column_start + NEIGHBOUR_BLOCK, n))
            distance = features[rows] @ features[columns].T
            distance *= -2
            distance += norms[rows, None]
            distance += norms[None, columns]
            if column_start == row_start:
                np.fill_diagonal(distance, np.inf)  # leave the sample itself out
            best_distance[rows], best_index[rows] = _merge_nearest(
                best_distance[rows], best_index[rows], distance, sample_index[columns], k
            )
            if column_start != row_start:
                best_distance[columns], best_index[columns] = _merge_nearest(
                    best_distance[columns], best_index[columns], distance.T, sample_index[rows], k
                )
    return best_distance, best_index


def _rerank(features: np.ndarray, norms: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of each sample's ``candidates [N, m]`` by float64 squared
    distance: (indices [N, k], distances [N, k]), nearest first."""
    distance = np.empty(candidates.shape)
    for start in range(0, len(features), NEIGHBOUR_BLOCK):
        rows = slice(start, start + NEIGHBOUR_BLOCK)
        for j in range(candidates.shape[1]):
            neighbour = candidates[rows, j]
            dots = np.einsum("rd,rd->r", features[rows], features[neighbour])
            distance[rows, j] = norms[rows] + norms[neighbour] - 2 * dots
    order = np.lexsort((candidates, distance), axis=1)[:, :k]  # ties go to the lower sample index
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(distance, order, axis=1)


def nearest_neighbours(features: np.ndarray, k: int) -> np.ndarray:
    """Indices [N, k] of each sample's k nearest other samples (euclidean),
    nearest first, as float64 squared distances rank them.

    Candidates are found with float32 distances (half the work) and re-ranked
    in float64. A sample for which some non-candidate could still be nearer,
    given the float32 rounding-error bound, is searched again in float64 among
    all samples, so the result does not depend on the float32 pass.
    """
    n, d = features.shape
    features = features - features.mean(axis=0)  # distances do not change; rounding shrinks
    norms = np.einsum("ij,ij->i", features, features)
    kept = min(k + CANDIDATES_BEYOND_K, n - 1)
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow only sends rows to the exact search
        approximate, candidates = _blocked_nearest(features.astype(np.float32), kept)
    nearest, distance = _rerank(features, norms, candidates, k)
    if kept == n - 1:
        return nearest
    # Rounding to float32 and a D-term dot product move a squared distance by at
    # most (8u + 2 gamma_D)(|a|^2 + |b|^2), gamma_D = D u / (1 - D u); twice that, for margin.
    unit = np.finfo(np.float32).eps / 2
    error_bound = 2 * (8 * unit + 2 * d * unit / (1 - d * unit)) * (norms + norms.max())
    # Every non-candidate lies at float32 distance >= the last candidate's (overflow: no bound).
    certain = (distance[:, -1] < approximate[:, -1] - error_bound) & np.isfinite(approximate[:, -1])
    uncertain = np.flatnonzero(~certain)
    sample_index = np.arange(n)
    for start in range(0, len(uncertain), NEIGHBOUR_BLOCK):
        rows = uncertain[start : start + NEIGHBOUR_BLOCK]
        exact = norms[rows, None] + norms[None, :] - 2 * features[rows] @ features.T
        exact[np.arange(len(rows)), rows] = np.inf
        none_yet = (np.full((len(rows), k), np.inf), np.zeros((len(rows), k), dtype=np.intp))
        nearest[rows] = _merge_nearest(*none_yet, exact, sample_index, k)[1]
    return nearest


@register_metric("knn_loo_accuracy", needs="features", citation="leave-one-out k-nearest-neighbour accuracy",
                 min_in_one_class=HELD_OUT_CLASS_SIZE,
                 single_sample_class="uses the sample of such a class as a neighbour of the others but does not score it")
def knn_loo_accuracy(features, labels, k: int = 1) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of ``features [N, D]`` (euclidean):
    the fraction of samples whose k nearest other samples vote for their label.
    Returns a float in [0, 1].

    A tied vote goes to the tied class whose member comes nearest. Among equally
    distant neighbours the lower sample index counts as nearer.

    Few labels: the only sample of a class cannot be predicted right once it is
    left out, so such samples are not scored (they still serve as neighbours of
    the others); the fraction is over the samples of classes with at least 2.
    At least one class needs 2 samples.
    """
    problems = option_problems("knn_loo_accuracy", "k", k, integer=True, minimum=1)
    n = len(labels) if np.ndim(labels) == 1 else None
    if not problems and n is not None and k > n - 1:
        problems.append(f"The 'k' of knn_loo_accuracy must be at most N - 1 = {n - 1}. Got {k}.")
    inputs = check_metric_inputs("knn_loo_accuracy", labels, features=features, parameter_problems=problems,
                                 min_in_one_class=HELD_OUT_CLASS_SIZE)
    features, labels = inputs.features, inputs.labels
    neighbour_labels = labels[nearest_neighbours(features, k)]  # [N, k], nearest first
    votes = np.zeros((len(labels), inputs.num_classes))
    np.add.at(votes, (np.arange(len(labels))[:, None], neighbour_labels), 1.0)
    winning = votes == votes.max(axis=1, keepdims=True)
    first_winner = np.argmax(np.take_along_axis(winning, neighbour_labels, axis=1), axis=1)
    predictions = neighbour_labels[np.arange(len(labels)), first_winner]
    scored = np.bincount(labels)[labels] >= HELD_OUT_CLASS_SIZE
    return float(np.mean(predictions[scored] == labels[scored]))


def _row_keys(features: np.ndarray, labels: np.ndarray, columns: int) -> np.ndarray:
    """One byte string per row whose byte order is the numeric order of (its first ``columns`` features,
    then its label): each float64 mapped to an order-preserving unsigned integer, stored big-endian."""
    bits = np.ascontiguousarray(features[:, :columns] + 0.0).view(np.uint64)  # + 0.0 makes -0.0 equal to 0.0
    keys = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
    rows = np.ascontiguousarray(np.column_stack([keys, labels.astype(np.uint64)]).astype(">u8"))
    return rows.view(np.dtype((np.void, rows.shape[1] * 8))).ravel()


def canonical_order(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Positions that sort the samples lexicographically by (features [N, D], then label):
    the order of ``np.lexsort(np.vstack([labels, features.T[::-1]]))``, computed from the first few
    columns and extended to all of them only when those leave ties."""
    for columns in (min(8, features.shape[1]), features.shape[1]):
        keys = _row_keys(features, labels, columns)
        order = np.argsort(keys, kind="stable")
        if columns == features.shape[1] or not np.any(keys[order][1:] == keys[order][:-1]):
            return order
    raise AssertionError("unreachable")


def _ridge_fold_predictions(features: np.ndarray, onehot: np.ndarray, train: np.ndarray, test: np.ndarray,
                            gram: np.ndarray, test_gram: np.ndarray, sums: np.ndarray, cross: np.ndarray,
                            C: float) -> np.ndarray:
    """Predicted classes [len(test)] of the ridge classifier fitted on rows ``train``.

    ``gram = X^T X [D, D]``, ``sums = X^T 1 [D]`` and ``cross = X^T Y [D, C]`` over every row, and
    ``test_gram`` the test rows' X^T X; the training fold's centred statistics are those minus the
    test rows' (the primal form, D <= N).
    """
    x_test = features[test]
    n = len(train)
    sums_t = sums - x_test.sum(axis=0)
    class_counts = onehot[train].sum(axis=0)
    scatter = gram - test_gram - np.outer(sums_t, sums_t) / n
    target = cross - x_test.T @ onehot[test] - np.outer(sums_t, class_counts) / n
    penalty = np.trace(scatter) / (n * features.shape[1]) / C
    scatter[np.diag_indices_from(scatter)] += penalty
    weights = scipy.linalg.cho_solve(scipy.linalg.cho_factor(scatter, check_finite=False), target, check_finite=False)
    scores = (x_test - sums_t / n) @ weights + class_counts / n
    return np.argmax(scores, axis=1)


def _ridge_fold_predictions_dual(kernel: np.ndarray, onehot: np.ndarray, train: np.ndarray, test: np.ndarray,
                                 dim: int, C: float) -> np.ndarray:
    """The same predictions from ``kernel = X X^T [N, N]`` (the dual form, for D > N)."""
    k_tt, k_st = kernel[np.ix_(train, train)], kernel[np.ix_(test, train)]
    column_mean = k_tt.mean(axis=0)
    centred = k_tt - column_mean[:, None] - column_mean[None, :] + column_mean.mean()
    centred_st = k_st - k_st.mean(axis=1, keepdims=True) - column_mean[None, :] + column_mean.mean()
    n = len(train)
    class_mean = onehot[train].mean(axis=0)
    penalty = np.trace(centred) / (n * dim) / C
    centred[np.diag_indices_from(centred)] += penalty
    dual = scipy.linalg.cho_solve(scipy.linalg.cho_factor(centred, check_finite=False), onehot[train] - class_mean,
                                  check_finite=False)
    return np.argmax(centred_st @ dual + class_mean, axis=1)


@register_metric("linear_probe_accuracy", needs="features",
                 citation="cross-validated ridge (least-squares) classifier accuracy",
                 min_in_one_class=HELD_OUT_CLASS_SIZE,
                 single_sample_class="keeps the sample of such a class in every training fold and does not score it")
def linear_probe_accuracy(features, labels, folds: int = 5, C: float = 1.0, seed: int = 0) -> float:
    """Stratified ``folds``-fold cross-validated accuracy of a ridge classifier on
    ``features [N, D]``: correct held-out predictions over N. Returns a float in [0, 1].

    Each fold fits, on its training rows, the least-squares map from the centred
    features to the centred one-hot labels with an L2 penalty,
    ``W = (Xc^T Xc + lambda I)^-1 Xc^T Yc`` with ``lambda = mean feature variance / C``
    (so the fit does not change when the features are rescaled; larger ``C``
    regularises less), and predicts ``argmax((x - mean) W + class frequencies)``.
    The closed form makes the probe fast: every fold's statistics come from the
    ones over all rows minus the fold's test rows, one D x D solve per fold
    (or one N x N kernel solve when D > N).

    With fewer than ``folds`` samples in some class, the number of folds drops to
    the smallest class count of at least 2. The only sample of a class is never
    held out (it could not be predicted right without another of its class):
    it is in every training fold, and the accuracy is over the samples of
    classes with at least 2, so at least one class needs 2. Features are used
    as given, without scaling. Samples are put in a canonical (sorted) order
    before ``seed`` shuffles them into folds, so the score does not depend on the
    order in which they are given.
    """
    problems = option_problems("linear_probe_accuracy", "folds", folds, integer=True, minimum=2)
    problems += option_problems("linear_probe_accuracy", "C", C, minimum=0, strict=True)
    problems += option_problems("linear_probe_accuracy", "seed", seed, integer=True, minimum=0)
    inputs = check_metric_inputs(
        "linear_probe_accuracy", labels, features=features, parameter_problems=problems,
        min_in_one_class=HELD_OUT_CLASS_SIZE,
    )
    canonical = canonical_order(inputs.features, inputs.labels)
    features, labels = inputs.features[canonical], inputs.labels[canonical]
    counts = np.bincount(labels)
    held_out = np.flatnonzero(counts[labels] >= HELD_OUT_CLASS_SIZE)  # samples that take turns in the test fold
    always_trained = np.flatnonzero(counts[labels] < HELD_OUT_CLASS_SIZE)
    used_folds = min(folds, int(counts[counts >= HELD_OUT_CLASS_SIZE].min()))
    splitter = StratifiedKFold(n_splits=used_folds, shuffle=True, random_state=seed)
    onehot = np.eye(inputs.num_classes)[labels]
    n, dim = features.shape
    primal = dim <= n
    fold_rows = [(np.concatenate([held_out[train], always_trained]), held_out[test])
                 for train, test in splitter.split(features[held_out], labels[held_out])]
    if primal:
        # X^T X as the sum of the test folds' (and the always-trained rows') products, each needed anyway.
        test_grams = [features[test].T @ features[test] for _, test in fold_rows]
        gram = sum(test_grams) + features[always_trained].T @ features[always_trained]
        sums, cross = features.sum(axis=0), features.T @ onehot
    else:
        kernel = features @ features.T
    correct = 0
    for fold, (train, test) in enumerate(fold_rows):
        if primal:
            predicted = _ridge_fold_predictions(features, onehot, train, test, gram, test_grams[fold], sums, cross, C)
        else:
            predicted = _ridge_fold_predictions_dual(kernel, onehot, train, test, dim, C)
        correct += int(np.sum(predicted == labels[test]))
    return correct / len(held_out)
