"""Metrics against literal loops over their definitions, and against invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xdistill.errors import XDistillError
from xdistill.eval import (
    accuracy,
    agreement,
    classification_report,
    expected_calibration_error,
    macro_f1,
    negative_log_likelihood,
    per_class_accuracy,
)

C = 4


def random_case(seed: int, n: int = 60, classes: int = C):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, size=n)
    return probs, labels


def loop_accuracy(preds, labels):
    return sum(1 for p, y in zip(preds, labels) if p == y) / len(labels)


def loop_macro_f1(preds, labels, classes):
    scores = []
    for c in range(classes):
        tp = sum(1 for p, y in zip(preds, labels) if p == c and y == c)
        fp = sum(1 for p, y in zip(preds, labels) if p == c and y != c)
        fn = sum(1 for p, y in zip(preds, labels) if p != c and y == c)
        if tp + fp + fn == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


def loop_ece(probs, labels, n_bins):
    """Guo et al. 2017: bins ((m-1)/M, m/M], weighted |accuracy - confidence|."""
    total = 0.0
    for m in range(1, n_bins + 1):
        low, high = (m - 1) / n_bins, m / n_bins
        members = [i for i in range(len(labels)) if low < max(probs[i]) <= high]
        if not members:
            continue
        acc = sum(1 for i in members if list(probs[i]).index(max(probs[i])) == labels[i]) / len(members)
        conf = sum(max(probs[i]) for i in members) / len(members)
        total += len(members) / len(labels) * abs(acc - conf)
    return total


def loop_nll(probs, labels):
    return sum(-math.log(probs[i][labels[i]]) for i in range(len(labels))) / len(labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_literal_loops(seed):
    probs, labels = random_case(seed)
    preds = probs.argmax(axis=1)
    assert accuracy(probs, labels) == pytest.approx(loop_accuracy(preds, labels))
    assert accuracy(preds, labels) == pytest.approx(loop_accuracy(preds, labels))
    assert macro_f1(preds, labels, C) == pytest.approx(loop_macro_f1(preds, labels, C))
    for n_bins in (1, 5, 15):
        assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(loop_ece(probs, labels, n_bins))
    assert negative_log_likelihood(probs, labels) == pytest.approx(loop_nll(probs, labels))


def test_macro_f1_matches_scikit_learn():
    f1_score = pytest.importorskip("sklearn.metrics").f1_score
    for seed in range(4):
        probs, labels = random_case(seed, n=40, classes=5)
        preds = probs.argmax(axis=1)
        assert macro_f1(preds, labels, 5) == pytest.approx(f1_score(labels, preds, average="macro"))
    # a class never predicted nor present is left out, as scikit-learn does
    preds, labels = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    assert macro_f1(preds, labels, 6) == pytest.approx(f1_score(labels, preds, average="macro"))


def test_small_hand_computed_values():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 1, 1, 1])
    # bins of width 0.5: (0.5, 1] holds all four; accuracy 3/4, mean confidence 0.75
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.0)
    # bins of width 0.1: 0.9 right, 0.6 wrong, 0.7 right, 0.8 right, one sample each
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx((0.1 + 0.6 + 0.3 + 0.2) / 4)
    assert negative_log_likelihood(probs, labels) == pytest.approx(-(np.log(0.9 * 0.4 * 0.7 * 0.8)) / 4)
    # bins are closed on the right: a confidence of exactly 0.5 falls in (0, 0.5]
    edge_probs = np.array([[0.5, 0.5], [0.75, 0.25], [0.75, 0.25]])
    assert expected_calibration_error(edge_probs, np.array([1, 0, 0]), n_bins=2) == pytest.approx(1 / 6 + 1 / 6)
    # class 0: tp 1, fp 1, fn 0 -> F1 2/3; class 1: tp 2, fp 0, fn 1 -> F1 4/5
    assert macro_f1(probs.argmax(axis=1), labels, 2) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_per_class_accuracy_marks_absent_classes():
    preds = np.array([0, 1, 1, 2, 0])
    labels = np.array([0, 1, 0, 0, 0])
    assert per_class_accuracy(preds, labels, 4) == [pytest.approx(2 / 4), 1.0, None, None]


def test_agreement():
    a = np.array([0, 1, 2, 2])
    b = np.eye(3)[[0, 1, 1, 2]]
    assert agreement(a, b) == pytest.approx(0.75)
    assert agreement(a, a) == 1.0


def test_perfect_predictions():
    labels = np.array([0, 2, 1, 3, 3])
    one_hot = np.eye(C)[labels]
    assert accuracy(one_hot, labels) == 1.0
    assert macro_f1(labels, labels, C) == 1.0
    assert expected_calibration_error(one_hot, labels) == 0.0
    assert negative_log_likelihood(one_hot, labels) == pytest.approx(0.0)
    assert per_class_accuracy(labels, labels, C) == [1.0, 1.0, 1.0, 1.0]


def test_renaming_classes_changes_nothing():
    probs, labels = random_case(3)
    rename = np.array([2, 0, 3, 1])  # old class c is called rename[c]
    renamed_probs = np.empty_like(probs)
    renamed_probs[:, rename] = probs
    renamed_labels = rename[labels]
    preds, renamed_preds = probs.argmax(axis=1), renamed_probs.argmax(axis=1)
    assert accuracy(renamed_probs, renamed_labels) == pytest.approx(accuracy(probs, labels))
    assert macro_f1(renamed_preds, renamed_labels, C) == pytest.approx(macro_f1(preds, labels, C))
    assert expected_calibration_error(renamed_probs, renamed_labels) == pytest.approx(
        expected_calibration_error(probs, labels)
    )
    assert negative_log_likelihood(renamed_probs, renamed_labels) == pytest.approx(
        negative_log_likelihood(probs, labels)
    )
    renamed_per_class = per_class_accuracy(renamed_preds, renamed_labels, C)
    assert [renamed_per_class[rename[c]] for c in range(C)] == per_class_accuracy(preds, labels, C)


def test_sample_order_changes_nothing():
    probs, labels = random_case(4)
    order = np.random.default_rng(0).permutation(len(labels))
    report, shuffled = classification_report(probs, labels, C), classification_report(probs[order], labels[order], C)
    assert shuffled.pop("per_class_accuracy") == pytest.approx(report.pop("per_class_accuracy"))
    assert shuffled == pytest.approx(report)


def test_classification_report():
    probs, labels = random_case(5)
    reference, _ = random_case(6)
    report = classification_report(probs, labels, C, reference_probs=reference)
    preds = probs.argmax(axis=1)
    assert report["n"] == len(labels)
    assert report["accuracy"] == pytest.approx(loop_accuracy(preds, labels))
    assert report["macro_f1"] == pytest.approx(loop_macro_f1(preds, labels, C))
    assert report["ece"] == pytest.approx(loop_ece(probs, labels, 15))
    assert report["nll"] == pytest.approx(loop_nll(probs, labels))
    assert report["per_class_accuracy"] == per_class_accuracy(preds, labels, C)
    assert report["agreement"] == pytest.approx(loop_accuracy(preds, reference.argmax(axis=1)))
    assert "agreement" not in classification_report(probs, labels, C)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: accuracy(np.eye(3), np.array([0, 1])), r"one entry per sample \(3\). Got 2"),
        (lambda: negative_log_likelihood(np.full((2, 3), 0.5), np.array([0, 1])), "Pass softmax\\(logits\\)"),
        (lambda: macro_f1(np.array([0, 1]), np.array([0, 5]), 3), r"class ids in \[0, 3\). Got values from 0 to 5"),
        (lambda: expected_calibration_error(np.eye(2), np.array([0, 1]), n_bins=0), "'n_bins'.*Got 0"),
        (lambda: classification_report(np.eye(3), np.array([0, 1, 2]), 4), "must have 4 columns"),
        (lambda: accuracy(np.array([0.5, 1.0]), np.array([0, 1])), "whole-number class ids"),
        (lambda: agreement(np.array([0, 1]), np.array([0, 1, 1])), "Got 2 and 3 samples"),
    ],
)
def test_bad_inputs_are_explained(call, expected):
    with pytest.raises(XDistillError, match=expected):
        call()
