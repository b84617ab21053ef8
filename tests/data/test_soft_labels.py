"""Soft labels [N, C] in a labeled split: read by the loader, checked, written back, and used by training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import make_arrays, run_cli
from xdistill.data import load_task, save_task, task_from_arrays
from xdistill.errors import XDistillError


def soft_task(soft=None):
    labeled, unlabeled, test = make_arrays(0)
    if soft is None:
        soft = np.random.default_rng(1).dirichlet(np.ones(3), size=len(labeled[1])).astype(np.float32)
    return task_from_arrays("tiny", ["c0", "c1", "c2"], labeled, unlabeled, test, soft=soft), soft


@pytest.mark.parametrize("layout", ["npz", "npy"])
def test_soft_labels_survive_save_and_load(tmp_path, layout):
    task, soft = soft_task()
    save_task(task, tmp_path / "t", layout=layout)
    loaded = load_task(tmp_path / "t")
    np.testing.assert_array_equal(loaded.labeled.soft, soft)
    assert loaded.unlabeled.soft is None and loaded.test.soft is None


def test_bad_soft_labels_are_refused(tmp_path):
    with pytest.raises(XDistillError, match="must sum to 1 in every row. Row 0 sums to 2"):
        soft_task(np.full((12, 3), 2 / 3, dtype=np.float32))
    with pytest.raises(XDistillError, match=r"must have shape \[12, 3\].*Got \[12, 2\]"):
        soft_task(np.full((12, 2), 0.5, dtype=np.float32))


def test_soft_labels_outside_the_labeled_split_are_an_error_not_dropped(tmp_path):
    task, _ = soft_task()
    save_task(task, tmp_path / "t")
    with np.load(tmp_path / "t" / "test.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "t" / "test.npz", **arrays, soft=np.full((len(arrays["y"]), 3), 1 / 3, dtype=np.float32))
    with pytest.raises(XDistillError, match="split 'test'.*holds soft labels 'soft', which only the labeled split uses"):
        load_task(tmp_path / "t")


def test_training_fits_the_soft_labels(tmp_path):
    """The labeled batch carries the split's soft labels and the step's cross-entropy is -sum_c q_c log p_c."""
    from xdistill.kinds.classification.batches import BatchSource
    from xdistill.kinds.classification.methods import METHODS
    from xdistill.kinds.classification.steps import FeaturesAndLogits, StepContext
    from xdistill.students import build_student
    from xdistill.train.config import DistillConfig
    from xdistill.train.inputs import StudentInputs

    task, soft = soft_task()
    config = DistillConfig(method="supervised", batch_size=4)
    batch = BatchSource(task, StudentInputs("image"), METHODS.get("supervised"), config).epoch(0)(0)
    np.testing.assert_array_equal(batch.soft_labeled.numpy(), soft[batch.index_labeled])
    torch.manual_seed(0)
    model = FeaturesAndLogits(build_student("cnn", (1, 8, 8), 3))
    terms = METHODS.get("supervised").step(model, batch, StepContext(config=config, num_classes=3))
    logits = model(batch.x_labeled)[1].detach().double()
    q = batch.soft_labeled.double()
    expected = sum(-sum(float(q[i, c]) * float(F.log_softmax(logits[i], 0)[c]) for c in range(3))
                   for i in range(len(q))) / len(q)
    assert float(terms["ce"]) == pytest.approx(expected, rel=1e-5)  # float32 logits against a float64 sum


def test_distill_follows_soft_labels_that_disagree_with_y(tmp_path):
    """Soft labels that name another class than y: the trained student predicts the soft labels' class."""
    labeled, unlabeled, test = make_arrays(0)
    shifted = (labeled[1] + 1) % 3
    task = task_from_arrays("tiny", ["c0", "c1", "c2"], labeled, unlabeled, test, soft=np.eye(3, dtype=np.float32)[shifted])
    save_task(task, tmp_path / "t")
    assert run_cli("distill", "--task", str(tmp_path / "t"), "--method", "supervised", "--out", str(tmp_path / "r"),
                   "--epochs", "40", "lr=0.02", "anneal=false", "progress=false") == 0
    from xdistill.students.io import load_student

    model, _ = load_student(tmp_path / "r")
    with torch.inference_mode():
        predicted = model((torch.as_tensor(labeled[0], dtype=torch.float32)[:, None] / 255 - 0.5) / 0.5).argmax(1).numpy()
    assert (predicted == shifted).mean() > (predicted == labeled[1]).mean()
