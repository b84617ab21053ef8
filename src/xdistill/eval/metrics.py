"""Classification metrics as plain numpy functions.

``probs`` are class probabilities [N, C] (rows sum to 1: pass softmax(logits)),
``preds`` are predicted class ids [N] and ``labels`` true class ids [N] in
[0, C). Every metric returns plain Python numbers, ready for JSON.
"""

from __future__ import annotations

import numpy as np

from xdistill.errors import XDistillError

# Rows of probs may be off by this much from summing to 1 (float16 round-off).
SUM_TOLERANCE = 1e-3


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose prediction is the label.

    predictions: probs [N, C] (the argmax is the prediction) or preds [N]; labels [N].
    """
    preds = as_predictions(predictions, "predictions")
    labels = as_labels(labels, len(preds))
    return float(np.mean(preds == labels))


def macro_f1(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN).

    preds [N], labels [N], both in [0, num_classes). The mean runs over the
    classes that occur in ``labels`` or ``preds``; a class absent from both has
    no defined F1 and is left out (as scikit-learn's ``f1_score(average="macro")``).
    """
    preds = as_predictions(preds, "preds", num_classes)
    labels = as_labels(labels, len(preds), num_classes)
    true_positives = np.bincount(labels[preds == labels], minlength=num_classes)
    predicted = np.bincount(preds, minlength=num_classes)
    actual = np.bincount(labels, minlength=num_classes)
    present = (predicted + actual) > 0
    f1 = 2 * true_positives[present] / (predicted[present] + actual[present])
    return float(np.mean(f1))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins.

    ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)| (Guo et al. 2017, "On
    Calibration of Modern Neural Networks", Sec. 2), where bin m holds the
    samples whose top probability lies in ((m - 1) / n_bins, m / n_bins].
    probs [N, C], labels [N].
    """
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise XDistillError(f"The 'n_bins' of expected_calibration_error must be an int >= 1. Got {n_bins!r}.")
    probs = as_probs(probs)
    labels = as_labels(labels, len(probs), probs.shape[1])
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bins = np.searchsorted(inner_edges, confidence, side="left")  # right-closed bins
    ece = 0.0
    for m in np.unique(bins):
        in_bin = bins == m
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean of -log p(label), with probabilities clipped below at ``eps``. probs [N, C], labels [N]."""
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
        raise XDistillError(f"The 'eps' of negative_log_likelihood must be a float in (0, 1). Got {eps!r}.")
    probs = as_probs(probs)
    labels = as_labels(labels, len(probs), probs.shape[1])
    label_probs = probs[np.arange(len(labels)), labels]
    return float(np.mean(-np.log(np.maximum(label_probs, eps))))


def per_class_accuracy(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float | None]:
    """Accuracy on the samples of each class (its recall); None for a class absent from ``labels``.

    preds [N], labels [N] -> list of num_classes entries.
    """
    preds = as_predictions(preds, "preds", num_classes)
    labels = as_labels(labels, len(preds), num_classes)
    correct = np.bincount(labels[preds == labels], minlength=num_classes)
    actual = np.bincount(labels, minlength=num_classes)
    return [float(correct[c] / actual[c]) if actual[c] else None for c in range(num_classes)]


def agreement(predictions_a: np.ndarray, predictions_b: np.ndarray) -> float:
    """Fraction of samples on which two models predict the same class.

    Each argument: probs [N, C] or preds [N].
    """
    preds_a = as_predictions(predictions_a, "predictions_a")
    preds_b = as_predictions(predictions_b, "predictions_b")
    if len(preds_a) != len(preds_b):
        raise XDistillError(
            f"agreement needs predictions for the same samples. Got {len(preds_a)} and {len(preds_b)} samples."
        )
    return float(np.mean(preds_a == preds_b))


def classification_report(
    probs: np.ndarray, labels: np.ndarray, num_classes: int, reference_probs: np.ndarray | None = None
) -> dict:
    """Every metric above for one model; probs [N, C], labels [N], reference_probs [N, C] or None.

    Returns {"n", "accuracy", "macro_f1", "ece", "nll", "per_class_accuracy"},
    plus "agreement" with the reference model (say, the teacher) when one is given.
    """
    probs = as_probs(probs, num_classes)
    labels = as_labels(labels, len(probs), num_classes)
    preds = probs.argmax(axis=1)
    report = {
        "n": len(labels),
        "accuracy": accuracy(preds, labels),
        "macro_f1": macro_f1(preds, labels, num_classes),
        "ece": expected_calibration_error(probs, labels),
        "nll": negative_log_likelihood(probs, labels),
        "per_class_accuracy": per_class_accuracy(preds, labels, num_classes),
    }
    if reference_probs is not None:
        report["agreement"] = agreement(preds, as_probs(reference_probs, num_classes, "reference_probs"))
    return report


def as_probs(probs: object, num_classes: int | None = None, name: str = "probs") -> np.ndarray:
    """Check probabilities [N, C] and return them as a float64 array."""
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2 or len(array) == 0:
        raise XDistillError(f"The {name} must be an [N, C] array with N >= 1. Got shape {array.shape}.")
    if num_classes is not None and array.shape[1] != num_classes:
        raise XDistillError(f"The {name} must have {num_classes} columns, one per class. Got {array.shape[1]}.")
    row_sums = array.sum(axis=1)
    if not np.isfinite(array).all() or (array < 0).any() or np.abs(row_sums - 1).max() > SUM_TOLERANCE:
        worst = int(np.argmax(np.abs(row_sums - 1)))
        raise XDistillError(
            f"The {name} must be probabilities: finite, >= 0, each row summing to 1. "
            f"Got min {array.min():.4g}, row {worst} sums to {row_sums[worst]:.4g}. Pass softmax(logits)."
        )
    return array


def as_predictions(predictions: object, name: str, num_classes: int | None = None) -> np.ndarray:
    """Class ids [N] from probs [N, C] (argmax) or from class ids [N]."""
    array = np.asarray(predictions)
    if array.ndim == 2:
        return as_probs(array, num_classes, name).argmax(axis=1)
    return class_ids(array, name, num_classes)


def as_labels(labels: object, n: int, num_classes: int | None = None) -> np.ndarray:
    """Check labels [n] (class ids in [0, num_classes)) and return them as int64."""
    array = class_ids(np.asarray(labels), "labels", num_classes)
    if len(array) != n:
        raise XDistillError(f"The labels must have one entry per sample ({n}). Got {len(array)}.")
    return array


def class_ids(array: np.ndarray, name: str, num_classes: int | None = None) -> np.ndarray:
    if array.ndim != 1 or len(array) == 0:
        raise XDistillError(f"The {name} must be a 1-D array of class ids with N >= 1. Got shape {array.shape}.")
    is_number = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if not is_number or not np.isfinite(array).all() or (array != np.round(array)).any():
        raise XDistillError(f"The {name} must be whole-number class ids. Got dtype {array.dtype}.")
    ids = array.astype(np.int64)
    if num_classes is None:
        if ids.min() < 0:
            raise XDistillError(f"The {name} must be class ids >= 0. Got {ids.min()}.")
        return ids
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise XDistillError(f"num_classes must be an int >= 1. Got {num_classes!r}.")
    if ids.min() < 0 or ids.max() >= num_classes:
        raise XDistillError(
            f"The {name} must be class ids in [0, {num_classes}). Got values from {ids.min()} to {ids.max()}."
        )
    return ids
