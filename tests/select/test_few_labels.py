"""Selection and bridging with one or two labeled samples per class."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xdistill.cache.extract import TeacherCache
from xdistill.data import load_task
from xdistill.errors import XDistillError
from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.targets import held_out_accuracy
from xdistill.select import METRICS, bridge, compute_metric, gbc, knn_loo_accuracy, linear_probe_accuracy
from xdistill.select.applicability import (
    FALLBACK_ORDER,
    choose_ranking_metric,
    not_applicable_notes,
    not_applicable_reason,
)
from xdistill.select.bridge import fit_bridge, held_out_splits
from xdistill.select.config import AUTO_METRIC, SelectionConfig
from xdistill.select.rank import rank_teachers
from xdistill.teachers.zoo import load_zoo
from xdistill.train.config import DistillConfig

from ..conftest import write_task
from .transferability_reference import random_case

HELD_OUT_PROBES = {"knn_loo_accuracy", "linear_probe_accuracy"}  # need another sample of a held-out one's class


def few_label_case(per_class: int, classes: int = 4, dim: int = 6, seed: int = 0) -> dict:
    """random_case's features and probabilities with exactly ``per_class`` labels of every class."""
    rng = np.random.default_rng([seed, per_class])
    case = random_case(rng, 2 * classes, dim, classes)  # 2 per class: the minimum random_case draws
    labels = np.repeat(np.arange(classes), per_class)
    rows = np.concatenate([np.flatnonzero(case["labels"] == c)[:per_class] for c in range(classes)])
    return {"features": case["features"][rows], "probs": case["probs"][rows], "labels": labels}


@pytest.mark.parametrize("per_class", [1, 2])
@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_computes_or_says_why_not(name, per_class):
    case = few_label_case(per_class)
    reason = not_applicable_reason(name, case["labels"])
    if name in HELD_OUT_PROBES and per_class == 1:
        assert reason is not None and "needs a class with at least 2 labeled samples" in reason
        with pytest.raises(XDistillError, match="needs a class with at least 2 labeled samples"):
            compute_metric(name, case["features"], case["probs"], labels=case["labels"])
    else:
        assert reason is None
        value = compute_metric(name, case["features"], case["probs"], labels=case["labels"])
        assert math.isfinite(value)


@pytest.mark.parametrize("name", METRICS.names())
def test_missing_teacher_outputs_are_a_reason(name):
    labels = np.repeat(np.arange(3), 2)
    need = METRICS.get(name).needs
    assert not_applicable_reason(name, labels, has_features=need == "probs", has_probs=need == "features") == (
        "needs the teacher's features, which the teacher does not give" if need == "features"
        else "needs the teacher's class probabilities (logits), which the teacher does not give"
    )
    assert not_applicable_reason(name, labels, has_features=need == "features", has_probs=need == "probs") is None


def reference_few_label_gbc(features, labels, reference=None):
    """Spherical GBC written out pair by pair. A class of one sample takes the
    pooled 1/n within-class variance of the classes with 2 or more; when there
    are none, half the mean squared distance of each reference row to its
    nearest labeled row, or without a reference the labeled features' variance."""
    classes = range(labels.max() + 1)
    repeated = [c for c in classes if np.sum(labels == c) >= 2]
    if repeated:
        deviations = [features[labels == c] - features[labels == c].mean(axis=0) for c in repeated]
        shared = np.mean(np.concatenate(deviations) ** 2, axis=0)
    elif reference is not None:
        nearest = [features[np.argmin([np.sum((row - f) ** 2) for f in features])] for row in reference]
        shared = np.mean((reference - np.array(nearest)) ** 2, axis=0) / 2
    else:
        shared = features.var(axis=0)
    means, variances = [], []
    for c in classes:
        rows = features[labels == c]
        means.append(rows.mean(axis=0))
        own = ((rows - rows.mean(axis=0)) ** 2).mean(axis=0) if len(rows) >= 2 else shared
        variances.append(np.maximum(own, 1e-4).mean())
    total = 0.0
    for i in classes:
        for j in classes:
            if i != j:
                s = (variances[i] + variances[j]) / 2
                diff = means[i] - means[j]
                total += np.exp(-(diff @ diff / s / 8 + np.log(s / np.sqrt(variances[i] * variances[j])) / 2))
    return -total


@pytest.mark.parametrize("with_reference", [False, True])
@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [0, 0, 1, 2, 2, 2, 3]], ids=["all single", "some single"])
def test_gbc_gives_single_sample_classes_a_shared_variance(labels, with_reference):
    labels = np.array(labels)
    rng = np.random.default_rng(1)
    features = rng.standard_normal((len(labels), 5)) + np.eye(5)[labels] * 2
    reference = rng.standard_normal((30, 5)) + np.eye(5)[rng.integers(0, 4, 30)] * 2 if with_reference else None
    value = gbc(features, labels, reference=reference)
    # float64 sums of a few dozen terms: 1e-10 relative covers their rounding
    assert value == pytest.approx(reference_few_label_gbc(features, labels, reference), rel=1e-10)
    # the 1e-4 floor alone would make single samples look perfectly separated (a score of 0)
    assert value < -1e-3


def _one_shot_teacher(rng, separation, classes=5, dim=4, unlabeled=200):
    """One labeled exemplar per class and unlabeled samples of the same classes,
    from class centres ``separation`` apart in units of the within-class spread."""
    centres = rng.standard_normal((classes, dim)) * separation
    exemplars = centres + rng.standard_normal((classes, dim))
    pool = centres[rng.integers(0, classes, unlabeled)] + rng.standard_normal((unlabeled, dim))
    return exemplars, pool


def test_gbc_at_one_label_per_class_tells_separated_from_mixed_features_with_a_reference():
    rng = np.random.default_rng(2)
    labels = np.arange(5)
    separated, separated_pool = _one_shot_teacher(rng, separation=6.0)
    mixed, mixed_pool = _one_shot_teacher(rng, separation=0.3)
    assert gbc(separated, labels, reference=separated_pool) > gbc(mixed, labels, reference=mixed_pool) + 1.0
    with pytest.raises(XDistillError, match="reference must have the features' 4 columns"):
        gbc(separated, labels, reference=separated_pool[:, :3])


def test_knn_scores_only_samples_whose_class_has_another_sample():
    features = np.array([[0.0], [3.0], [10.0], [11.0], [2.9]])
    labels = np.array([0, 0, 1, 1, 2])  # class 2 has a single sample, nearest to both of class 0
    # class 0's samples find the singleton first (wrong), class 1's find each other (right);
    # the singleton itself is not scored
    assert knn_loo_accuracy(features, labels) == 0.5
    assert knn_loo_accuracy(features[:4], labels[:4]) == 1.0


def test_linear_probe_keeps_single_samples_in_training():
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    features = rng.standard_normal((7, 3)) * 0.1 + 5 * np.eye(3)[labels]
    assert linear_probe_accuracy(features, labels, folds=3) == 1.0
    order = rng.permutation(7)
    assert linear_probe_accuracy(features[order], labels[order], folds=3) == 1.0


def test_default_metric_is_automatic_along_the_fallback_order_of_every_metric():
    assert SelectionConfig().metric == AUTO_METRIC
    assert sorted(FALLBACK_ORDER) == METRICS.names()


@pytest.mark.parametrize("per_class", [1, 2])
def test_fallback_picks_a_metric_that_runs(per_class):
    labels = np.repeat(np.arange(3), per_class)
    probs_only = [(False, True), (False, True)]
    choice = choose_ranking_metric("gbc", labels, probs_only, fallback=True)
    assert choice.metric == "leep"
    assert choice.note.startswith("gbc needs a teacher's features, which no teacher of the zoo gives; ranked by leep")
    assert not_applicable_reason(choice.metric, labels, False, True) is None
    features_only = [(True, False)]
    expected = "gbc" if per_class == 1 else "knn_loo_accuracy"  # the probes need 2 of a class
    assert choose_ranking_metric("knn_loo_accuracy", labels, features_only, fallback=True).metric == expected


@pytest.mark.parametrize("per_class", [1, 2])
@pytest.mark.parametrize("requested", METRICS.names())
def test_the_fallback_always_lands_on_a_metric_that_runs(requested, per_class):
    labels = np.repeat(np.arange(3), per_class)
    for inputs in ([(True, True)], [(True, False)], [(False, True)], [(True, False), (False, True)]):
        choice = choose_ranking_metric(requested, labels, inputs, fallback=True)
        assert any(not_applicable_reason(choice.metric, labels, *given) is None for given in inputs)
        runs = any(not_applicable_reason(requested, labels, *given) is None for given in inputs)
        assert (choice.metric == requested) == runs
        if not runs:  # the first metric of the order that runs
            first = next(m for m in FALLBACK_ORDER
                         if any(not_applicable_reason(m, labels, *given) is None for given in inputs))
            assert choice.metric == first and "next metric of the fallback order" in choice.note


def test_an_explicitly_chosen_metric_that_cannot_run_is_an_error_naming_those_that_can():
    labels = np.arange(3)
    with pytest.raises(XDistillError) as error:
        choose_ranking_metric("knn_loo_accuracy", labels, [(True, True)], fallback=False)
    message = str(error.value)
    assert "'knn_loo_accuracy' cannot run on this task" in message
    assert "needs a class with at least 2 labeled samples" in message
    runnable = message.split("Metrics that can: ")[1].split(".")[0].split(", ")
    assert sorted(runnable) == sorted(set(METRICS.names()) - HELD_OUT_PROBES)
    assert choose_ranking_metric("knn_loo_accuracy", np.repeat(labels, 2), [(True, True)], fallback=False).note == ""


def test_single_sample_classes_are_noted_for_the_ranking_metric():
    note = choose_ranking_metric("gbc", np.array([0, 0, 1, 2]), [(True, True)], fallback=True).note
    assert note == ("2 of 3 classes have one labeled sample: gbc gives such a class a shared variance (pooled "
                    "over the other classes, or when every class has one, of unlabeled features around their "
                    "nearest labeled one)")


def test_not_applicable_notes_say_shared_reasons_once():
    notes = not_applicable_notes({"a": {"knn": "few labels", "leep": "no logits"}, "b": {"knn": "few labels"}})
    assert notes == ["every teacher: knn not applicable (few labels).", "a: leep not applicable (no logits)."]


@pytest.fixture
def one_label_task(tmp_path):
    return load_task(write_task(tmp_path / "task", n_lab=3))


def test_ranking_at_one_label_per_class(one_label_task, tiny_zoo, tmp_path):
    teachers = load_zoo(tiny_zoo).teachers()
    cache = TeacherCache(tmp_path / "cache", progress=False)
    lines = []
    ranking = rank_teachers(one_label_task, teachers, cache, log=lines.append)
    assert ranking.metric == "gbc" and sorted(t.rank for t in ranking.teachers) == [1, 2]
    for row in ranking.teachers:
        assert {m for m, v in row.scores.items() if v is None} == HELD_OUT_PROBES
    assert any(note.startswith("every teacher: knn_loo_accuracy, linear_probe_accuracy not applicable (needs a class")
               for note in ranking.notes)
    saved = ranking.to_json()
    assert (saved["metric_requested"], saved["metric_used"]) == (AUTO_METRIC, "gbc")
    assert saved["metric_note"].startswith("every class has one labeled sample: gbc gives")
    assert lines == [f"ranked 2 teachers by gbc: top is {ranking.top} ({saved['metric_note']})"]

    # a metric the user names is never replaced: it is an error that says why
    with pytest.raises(XDistillError, match="'linear_probe_accuracy' cannot run on this task"):
        rank_teachers(one_label_task, teachers, cache, SelectionConfig(metric="linear_probe_accuracy"))


def _blobs(per_class, classes=3, dim=4, seed=0, singles=0):
    """Separated Gaussian blobs: ``per_class`` samples of each class, then ``singles`` classes of one."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.repeat(np.arange(classes), per_class), classes + np.arange(singles)])
    centres = rng.normal(size=(classes + singles, dim)) * 4
    return centres[labels] + rng.normal(size=(len(labels), dim)) * 0.3, labels


def test_bridge_at_one_label_per_class_has_no_held_out_estimate():
    x, y = _blobs(1, classes=4)
    head = fit_bridge(x, y, 4)
    assert head.reliability_estimate == "none" and head.folds == 0
    assert head.C == bridge.FEW_LABELS_C and head.calibration_temperature == 1.0
    assert head.cv_accuracy is None and head.cv_nll is None and head.oof_probs is None
    probs = head.predict_proba(x)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)  # float32 softmax rows
    assert (probs.argmax(1) == y).all()


def test_bridge_at_two_labels_per_class_uses_stratified_folds():
    x, y = _blobs(2)
    head = fit_bridge(x, y, 3)
    assert head.reliability_estimate == "2-fold" and head.folds == 2
    assert np.isfinite(head.oof_probs).all() and head.cv_accuracy is not None


def test_bridge_leaves_one_out_when_some_class_has_one_label():
    x, y = _blobs(3, singles=2)  # classes 3 and 4 have one label each
    head = fit_bridge(x, y, 5)
    held = y < 3
    assert head.reliability_estimate == "leave-one-out" and head.folds == int(held.sum())
    assert np.isnan(head.oof_probs[~held]).all() and np.isfinite(head.oof_probs[held]).all()
    assert head.cv_accuracy == float((head.oof_probs[held].argmax(1) == y[held]).mean())
    assert (head.predict_proba(x).argmax(1) == y).all()


def test_held_out_splits_never_hold_out_the_only_label_of_a_class(monkeypatch):
    _, y = _blobs(4, singles=1)
    splits, estimate = held_out_splits(y, 4)
    assert estimate == "leave-one-out" and [list(h) for _, h in splits] == [[i] for i in range(12)]
    monkeypatch.setattr(bridge, "LEAVE_ONE_OUT_MAX_SAMPLES", 5)  # beyond it: stratified folds
    splits, estimate = held_out_splits(y, 4, folds=5)
    assert estimate == "4-fold"
    assert all(12 in train and 12 not in held for train, held in splits)
    assert sorted(np.concatenate([h for _, h in splits])) == list(range(12))


def test_reliability_counts_only_held_out_samples():
    labels = np.array([0, 1, 1, 2])
    oof = np.full((4, 3), np.nan)
    oof[1:3] = [[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]  # one right, one wrong; rows 0 and 3 never held out
    config = DistillConfig(mix="gated")
    assert held_out_accuracy([oof, oof], METHODS.get("weighted"), np.array([0.5, 0.5]), config, labels) == 0.5
    assert held_out_accuracy([oof], METHODS.get("nearest"), np.ones(1), config, labels) == 0.5
    assert held_out_accuracy([oof, None], METHODS.get("ensemble"), np.array([0.5, 0.5]), config, labels) is None
