"""The rule that names why a student ended below its best teacher, one cause at a time."""

from __future__ import annotations

import copy
import math

import pytest

from xdistill.report.shortfall import shortfall_causes, student_shortfall, teacher_accuracies


def _curve(accuracy, ce):
    return [{"epoch": e + 1, "train": {"loss": c + 0.1, "ce": c}, "test": {"accuracy": a}}
            for e, (a, c) in enumerate(zip(accuracy, ce))]


# A student at 0.40 below teacher 'a' (0.50); no cause applies: loss low, accuracy flat, 'a' weighted most.
BASE = {
    "test": {"accuracy": 0.40, "per_class_accuracy": [0.4, 0.4, 0.4]},
    "cost": {"params": 10_000},
    "curves": _curve([0.38, 0.40, 0.40, 0.40], [0.6, 0.3, 0.2, 0.1]),
    "teachers": {"teachers": {"a": {"weight": 0.7, "test_accuracy": 0.50},
                              "b": {"weight": 0.3, "test_accuracy": 0.30}}},
}


def _with(**changes):
    metrics = copy.deepcopy(BASE)
    for key, value in changes.items():
        metrics[key] = value
    return metrics


def _names(metrics, teacher_params=None):
    return [c.name for c in shortfall_causes(metrics, "a", teacher_params)]


def test_no_shortfall_without_teachers_or_when_the_student_matches_its_best():
    assert student_shortfall(_with(teachers=None)) is None
    assert student_shortfall(_with(test={"accuracy": 0.50, "per_class_accuracy": [0.5] * 3})) is None
    found = student_shortfall(BASE)
    assert (found.teacher, found.teacher_accuracy, found.student_accuracy) == ("a", 0.50, 0.40)
    assert found.gap == pytest.approx(0.10, abs=1e-12) and found.causes == []
    assert teacher_accuracies(BASE) == {"a": 0.50, "b": 0.30}


def test_epochs_when_accuracy_still_rises_at_the_end():
    rising = _with(curves=_curve([0.20, 0.30, 0.35, 0.40], [0.6, 0.3, 0.2, 0.1]))
    assert _names(rising) == ["epochs"]
    evidence = shortfall_causes(rising, "a")[0].evidence
    assert "0.300 at epoch 2" in evidence and "0.400 at epoch 4" in evidence
    # Rising by less than 0.01, or past its peak, is not "still rising".
    assert _names(_with(curves=_curve([0.38, 0.395, 0.398, 0.399], [0.6, 0.3, 0.2, 0.1]))) == []
    assert _names(_with(curves=_curve([0.2, 0.30, 0.45, 0.40], [0.6, 0.3, 0.2, 0.1]))) == []


def test_capacity_when_the_training_loss_stays_high_and_flat():
    chance = math.log(3)
    flat_high = _with(curves=_curve([0.4] * 4, [1.0, 0.8 * chance, 0.79 * chance, 0.78 * chance]))
    assert _names(flat_high) == ["capacity"]
    assert "10,000 parameters" in shortfall_causes(flat_high, "a")[0].evidence
    # Still falling by 5% or more over the last 3 epochs: not capacity.
    assert _names(_with(curves=_curve([0.4] * 4, [1.0, 0.9 * chance, 0.8 * chance, 0.7 * chance]))) == []
    # Low, under half the loss of a uniform guess: not capacity.
    assert _names(_with(curves=_curve([0.4] * 4, [1.0, 0.45 * chance, 0.45 * chance, 0.45 * chance]))) == []
    # With the teachers' sizes known the student must also be far smaller than the largest.
    assert _names(flat_high, {"a": 1_000_000, "b": 50}) == ["capacity"]
    assert "1.0% of teacher 'a'" in shortfall_causes(flat_high, "a", {"a": 1_000_000})[0].evidence
    assert _names(flat_high, {"a": 50_000}) == []
    # One epoch cannot show a loss that stopped falling.
    assert _names(_with(curves=_curve([0.4], [0.9 * chance]))) == []


def test_teacher_weights_when_the_best_teacher_is_under_weighted():
    teachers = {"a": {"weight": 0.2, "test_accuracy": 0.50}, "b": {"weight": 0.5, "test_accuracy": 0.30},
                "c": {"weight": 0.3, "test_accuracy": 0.20}}
    under = _with(teachers={"teachers": teachers})
    assert _names(under) == ["teacher_weights"]
    evidence = shortfall_causes(under, "a")[0].evidence
    assert "weight 0.200" in evidence and "uniform share 0.333" in evidence and "'b' had 0.500" in evidence
    # One teacher alone has nothing to be under-weighted against.
    assert _names(_with(teachers={"teachers": {"a": {"weight": 0.2, "test_accuracy": 0.5}}})) == []


def test_every_cause_is_reported_together_in_a_fixed_order():
    chance = math.log(3)
    metrics = _with(curves=_curve([0.30, 0.32, 0.35, 0.40], [1.0, 0.8 * chance, 0.79 * chance, 0.78 * chance]),
                    teachers={"teachers": {"a": {"weight": 0.1, "test_accuracy": 0.5},
                                           "b": {"weight": 0.9, "test_accuracy": 0.3}}})
    assert [c.name for c in student_shortfall(metrics).causes] == ["capacity", "epochs", "teacher_weights"]
