from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from xdistill.cache import TeacherCache
from xdistill.data import load_task
from xdistill.errors import XDistillError
from xdistill.kinds.classification.methods import METHODS
from xdistill.select.bridge import bridge_inputs, fit_bridge, fit_temperature
from xdistill.select.config import SelectionConfig
from xdistill.select.rank import rank_teachers
from xdistill.select.weights import rank_order, teacher_weights
from xdistill.teachers import load_zoo
from xdistill.teachers.base import TeacherOutput
from xdistill.train.config import DistillConfig


def combine(probs, method, weights, mix="gated"):
    return METHODS.get(method).combine(probs, weights, DistillConfig(mix=mix))


def test_weights_sum_to_one_follow_scores_and_respect_top_k():
    scores = {"a": 3.0, "b": 1.0, "c": 2.0, "d": None}
    w = teacher_weights(scores, temperature=1.0, top_k=0)
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["a"] > w["c"] > w["b"] and w["d"] == 0.0
    top2 = teacher_weights(scores, temperature=1.0, top_k=2)
    assert top2["b"] == 0.0 and top2["a"] + top2["c"] == pytest.approx(1.0)
    # z-scored: the weights do not change when scores are shifted or rescaled
    shifted = teacher_weights({k: (None if v is None else 10 * v - 7) for k, v in scores.items()}, 1.0, 0)
    assert all(shifted[k] == pytest.approx(w[k]) for k in w)


def test_weight_temperature_limits():
    scores = {"a": 1.0, "b": 0.0, "c": -1.0}
    sharp = teacher_weights(scores, temperature=1e-3, top_k=0)
    flat = teacher_weights(scores, temperature=1e3, top_k=0)
    assert sharp["a"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1 / 3, abs=1e-3) for v in flat.values())
    # closed form at temperature 1: z = score / std (population), softmax
    z = np.array([1.0, 0.0, -1.0]) / np.std([1.0, 0.0, -1.0])
    expected = np.exp(z) / np.exp(z).sum()
    w = teacher_weights(scores, temperature=1.0, top_k=0)
    np.testing.assert_allclose([w["a"], w["b"], w["c"]], expected)


def test_weights_reject_bad_values():
    with pytest.raises(XDistillError, match="temperature"):
        teacher_weights({"a": 1.0}, temperature=0)
    with pytest.raises(XDistillError, match="No teacher has a defined score"):
        teacher_weights({"a": None}, temperature=1)
    assert rank_order({"a": 0.1, "b": 0.5, "c": None}) == {"a": 2, "b": 1, "c": None}


def test_combine_methods():
    p = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.45, 0.55]]])  # [T=2, N=2, C=2]
    np.testing.assert_allclose(combine(p, "nearest", np.array([0.3, 0.7])), p[1])
    np.testing.assert_allclose(combine(p, "weighted", np.array([0.25, 0.75]), "average"), 0.25 * p[0] + 0.75 * p[1])
    # gated: sample 0: 0.25 * 0.9 = 0.225 < 0.75 * 0.6 = 0.45 -> teacher 1; sample 1: 0.2 < 0.4125 -> teacher 1
    np.testing.assert_allclose(combine(p, "weighted", np.array([0.25, 0.75])), p[1])
    # with even weights the more confident teacher wins each sample: teacher 0 on both
    np.testing.assert_allclose(combine(p, "weighted", np.array([0.5, 0.5]), "gated"), p[0])
    np.testing.assert_allclose(combine(p, "ensemble", np.array([0.5, 0.5])), p.mean(0))
    np.testing.assert_allclose(combine(p, "partition", np.array([0.5, 0.5])), np.array([[0.9, 0.1], [0.2, 0.8]]))


def test_gated_mix_hands_each_sample_one_teachers_prediction():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(3, 50))  # [T=3, N=50, C=4]
    weights = np.array([0.5, 0.3, 0.2])
    gated = combine(probs, "weighted", weights, "gated")
    gate = weights[:, None] * probs.max(axis=2)
    for n in range(50):
        chosen = [t for t in range(3) if np.array_equal(gated[n], probs[t, n])]
        assert chosen and gate[chosen[0], n] == gate[:, n].max()
    np.testing.assert_allclose(gated.sum(axis=1), 1.0)
    # one teacher, or one teacher with all the weight: its predictions unchanged
    np.testing.assert_array_equal(combine(probs[:1], "weighted", np.ones(1), "gated"), probs[0])
    np.testing.assert_array_equal(combine(probs, "weighted", np.array([1.0, 0.0, 0.0]), "gated"), probs[0])
    # the same as partition when the weights are even
    np.testing.assert_array_equal(combine(probs, "weighted", np.full(3, 1 / 3), "gated"),
                                  combine(probs, "partition", np.full(3, 1 / 3)))
    # an unknown mix is refused with the config, before any run
    assert DistillConfig(mix="hard").problems() == ["'mix' must be one of gated, average. Got 'hard'."]


def _blobs(n_per_class=20, classes=3, dim=8, sep=4.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * sep
    y = np.repeat(np.arange(classes), n_per_class)
    return centres[y] + rng.normal(size=(len(y), dim)), y


def test_bridge_separable_features_and_calibration():
    x, y = _blobs()
    head = fit_bridge(x, y, 3)
    assert head.cv_accuracy == 1.0 and head.folds == 5
    probs = head.predict_proba(x)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert (probs.argmax(1) == y).all()
    # the out-of-fold probabilities are what reliability is measured on
    assert head.oof_probs.shape == (len(y), 3)


def test_bridge_from_probabilities_of_another_label_space():
    x, y = _blobs(classes=4)
    # a teacher over 2 other labels whose probabilities still separate the 4 target classes partly
    teacher_logits = np.stack([x[:, 0], x[:, 1]], axis=1)
    inputs, source = bridge_inputs(None, teacher_logits)
    assert source == "probs"
    np.testing.assert_allclose(inputs, log_softmax(teacher_logits, axis=1))
    head = fit_bridge(inputs, y, 4, source=source)
    assert 0.25 <= head.cv_accuracy <= 1.0


def test_temperature_scaling_minimises_nll():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 3 * np.eye(3)[y] * 4  # over-confident
    t = fit_temperature(logits, y)

    def nll(temp):
        return -np.log(softmax(logits / temp, axis=1)[np.arange(200), y]).mean()

    assert nll(t) <= min(nll(t * 0.9), nll(t * 1.1), nll(1.0)) + 1e-9


def test_bridge_needs_one_label_per_class():
    x, y = _blobs(n_per_class=2)
    y[y == 0] = 1  # class 0 now has no sample
    with pytest.raises(XDistillError, match=r"at least 1 labeled sample of every class; classes \[0\] have none"):
        fit_bridge(x, y, 3)


def test_rank_from_cache_runs_no_teacher_and_marks_undefined(tiny_task, tiny_zoo, tmp_path):
    task = load_task(tiny_task)
    teachers = load_zoo(tiny_zoo).teachers()
    cache = TeacherCache(tmp_path / "c", progress=False)
    first = rank_teachers(task, teachers, cache, SelectionConfig(metric="knn_loo_accuracy", metrics=["knn_loo_accuracy", "leep"]))
    assert sorted(t.rank for t in first.teachers) == [1, 2]

    class NoLogits:
        def __init__(self, inner):
            self.inner, self.name, self.labels, self.modality = inner, inner.name + "-f", None, "image"

        def setup(self):
            self.inner.setup()

        def fingerprint(self):
            return self.inner.fingerprint() + "-features-only"

        def outputs(self, batch):
            return TeacherOutput(features=self.inner.outputs(batch).features)

    ranking = rank_teachers(task, teachers + [NoLogits(teachers[0])], cache, SelectionConfig(metric="logme", metrics=["logme", "leep"]))
    row = next(t for t in ranking.teachers if t.name == "t0-f")
    assert row.scores["leep"] is None and row.scores["logme"] is not None
    assert any("t0-f" in note and "leep" in note for note in ranking.notes)
    with pytest.raises(XDistillError, match="'leep' cannot run on this task: it needs a teacher's class probabilities"):
        rank_teachers(task, [NoLogits(teachers[0])], cache, SelectionConfig(metric="leep", metrics=["leep"]))
