"""The pseudo-labeled pool is judged by the held-out accuracy of the labels it would take."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from xdistill.condense.config import CondenseConfig
from xdistill.condense.pool import MIN_CONFIDENT_HELD_OUT, pseudo_label_accuracy
from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.targets import confident_held_out_accuracy
from xdistill.train.config import DistillConfig

# Out-of-fold predictions of one teacher on five labeled images; the fourth was never held out (NaN).
OOF = np.array([[0.95, 0.05], [0.92, 0.08], [0.6, 0.4], [np.nan, np.nan], [0.1, 0.9]])
LABELS = np.array([0, 1, 1, 0, 1])


def test_confident_held_out_accuracy_counts_only_confident_held_out_rows():
    accuracy, count = confident_held_out_accuracy([OOF], METHODS.get("weighted"), np.array([1.0]), DistillConfig(),
                                                  LABELS, 0.9)
    assert count == 3 and accuracy == pytest.approx(2 / 3)  # rows 0 (right), 1 (wrong), 4 (right)
    assert confident_held_out_accuracy([OOF], METHODS.get("weighted"), np.array([1.0]), DistillConfig(), LABELS,
                                       0.99) == (None, 0)


def stand_ins(oof: np.ndarray, labels: np.ndarray, reliability: float):
    task = SimpleNamespace(labeled=SimpleNamespace(y=labels))
    prepared = SimpleNamespace(head=lambda task, name: SimpleNamespace(oof_probs=oof))
    targets = SimpleNamespace(names=["t"], method="weighted", weights=np.array([1.0]), reliability=reliability)
    return task, prepared, targets


def test_the_confident_rows_decide_when_there_are_enough():
    n = MIN_CONFIDENT_HELD_OUT
    oof = np.concatenate([np.tile([[0.95, 0.05]], (n, 1)), np.tile([[0.55, 0.45]], (n, 1))])
    labels = np.concatenate([np.zeros(n, int), np.ones(n, int)])  # confident rows right, the others wrong
    accuracy, measured_on = pseudo_label_accuracy(*stand_ins(oof, labels, 0.5), CondenseConfig(pseudo_confidence=0.9))
    assert accuracy == 1.0 and f"the {n} held-out labeled images" in measured_on


def test_every_held_out_row_decides_when_few_are_confident():
    accuracy, measured_on = pseudo_label_accuracy(*stand_ins(OOF, LABELS, 0.5), CondenseConfig(pseudo_confidence=0.9))
    assert accuracy == 0.5 and "every held-out labeled image (only 3" in measured_on


def test_a_refused_pool_says_why_instead_of_asking_for_a_zoo():
    from xdistill.condense.pool import RealPool, pool_problems

    task = SimpleNamespace(classes=["a", "b"])
    pool = RealPool([], np.zeros(4, int), np.arange(4), np.array([0, 0, 1, 1]), 2,
                    note="labeled images only: the teachers' held-out labeled accuracy is 0.530, below 0.9")
    [problem] = pool_problems(pool, task, 3)
    assert "'a' has 2" in problem and "Lower --ipc to at most 2; the teachers' pseudo-labels were not used (the " \
        "teachers' held-out labeled accuracy is 0.530" in problem
    assert "pass --zoo" not in problem
    pool.note = "labeled images only"
    assert "at most 2, or pass --zoo" in pool_problems(pool, task, 3)[0]
    pool.pseudo, pool.note = 1, "2 labeled + 2 unlabeled images pseudo-labeled by the teachers"
    assert pool_problems(pool, task, 3)[0].endswith("Lower --ipc to at most 2.")
