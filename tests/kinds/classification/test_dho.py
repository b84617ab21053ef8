"""Dual-head optimisation: the heads, the choice of their mixing weight on held-out labels, and a run through the
real CLI whose saved student predicts with the mixture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_cli
from tests.kinds.classification.test_trust import write_world
from xdistill.data import load_task, save_task
from xdistill.kinds.classification.mixing import ALPHAS, DEFAULT_ALPHA, chosen_alpha
from xdistill.students.dual_head import DualHead, mixture_scores


def test_dual_head_returns_both_heads_in_training_and_the_mixture_in_eval():
    torch.manual_seed(0)
    head = DualHead.beside(torch.nn.Linear(4, 3), alpha=0.3)
    features = torch.randn(5, 4)
    both = head.train()(features)
    assert both.shape == (5, 6)
    torch.testing.assert_close(both[:, :3], head.ce(features))
    mixture = 0.3 * torch.softmax(head.ce(features), 1) + 0.7 * torch.softmax(head.kd(features), 1)
    torch.testing.assert_close(head.eval()(features).exp(), mixture)
    head.alpha.fill_(1.0)
    torch.testing.assert_close(head(features), torch.log_softmax(head.ce(features), 1))


def test_mixture_scores_match_a_hand_computation():
    p_ce = np.array([[0.9, 0.1], [0.6, 0.4]])
    p_kd = np.array([[0.2, 0.8], [0.1, 0.9]])
    accuracy, nll = mixture_scores(p_ce, p_kd, np.array([0, 1]), (0.0, 0.5, 1.0))
    assert accuracy == [0.5, 1.0, 0.5]  # each head gets one right; the mixture [0.55, 0.45], [0.35, 0.65] both
    assert nll == pytest.approx([-(np.log(0.2) + np.log(0.9)) / 2, -(np.log(0.55) + np.log(0.65)) / 2,
                                 -(np.log(0.9) + np.log(0.4)) / 2], rel=1e-12)


def test_alpha_is_the_lowest_mean_held_out_nll_of_the_last_three_measurements():
    def record(nll, accuracy=None):
        return {"alphas": [0.0, 0.5, 1.0], "nll": nll, "accuracy": accuracy or [0.5, 0.5, 0.5]}

    oldest = record([0.1, 9.0, 9.0])  # beyond the last three: ignored
    records = [None, oldest, record([1.0, 0.8, 0.9]), record([1.0, 0.9, 0.6]), record([1.0, 0.7, 0.9])]
    assert chosen_alpha(records)[0] == 1.0  # mean NLL 1.0, 0.8, 0.8: a tie, equal accuracy, the larger alpha
    records[-1] = record([1.0, 0.7, 0.9], [0.5, 0.9, 0.5])
    assert chosen_alpha(records)[0] == 0.5  # the same tie, broken by the better mean accuracy
    records[-1] = record([1.0, 0.75, 0.6])  # mean NLL 1.0, 0.8167, 0.7
    assert chosen_alpha(records)[0] == 1.0
    assert chosen_alpha([None, None]) == (DEFAULT_ALPHA, "default (no held-out measurement)")


@pytest.fixture(scope="module")
def dho_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dho")
    world = write_world(root)  # 30 labels of 3 classes coded in a pixel, and a teacher that reads the code
    return root, world["task"], world["perfect"]


def _distill(world, out, task=None):
    root, task_dir, zoo = world
    code = run_cli("distill", "--task", str(task or task_dir), "--zoo", str(zoo), "--cache", str(root / "cache"),
                   "--method", "dho", "--out", str(out), "epochs=3", "batch_size=6", "unlabeled_ratio=2",
                   "progress=false")
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def test_dho_run_chooses_alpha_on_held_out_labels_and_eval_uses_the_mixture(dho_world, tmp_path, capsys):
    metrics = _distill(dho_world, tmp_path / "run")
    alpha = metrics["dual_head"]["alpha"]
    assert alpha in ALPHAS and metrics["dual_head"]["source"].startswith("held-out labels")
    measured = [r["decisions"].get("dual_head") for r in metrics["curves"][:2]]
    assert chosen_alpha(measured)[0] == alpha
    meta = json.loads((tmp_path / "run" / "student.json").read_text())
    assert meta["head"] == "dual" and meta["alpha"] == alpha
    assert float(load_file(str(tmp_path / "run" / "student.safetensors"))["head.alpha"]) == pytest.approx(alpha)
    capsys.readouterr()
    assert run_cli("eval", str(tmp_path / "run"), "--json", str(tmp_path / "eval.json")) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-12)
    assert evaluated["nll"] == pytest.approx(metrics["test"]["nll"], rel=1e-5)
    # Export traces the eval-mode student, the mixture, and checks the file's outputs against it.
    assert run_cli("export", str(tmp_path / "run"), "--format", "torchscript") == 0


def test_the_test_split_takes_no_part_in_the_choice(dho_world, tmp_path):
    # The same run with the test labels shuffled ends with the same alpha and the same weights.
    root, task_dir, _ = dho_world
    task = load_task(str(task_dir))
    shuffled = task.test.y[np.random.default_rng(0).permutation(len(task.test.y))]
    other = root / "shuffled-test"
    from dataclasses import replace

    splits = {**task.splits, "test": replace(task.test, y=shuffled)}
    save_task(replace(task, splits=splits, root=None), other)
    first = _distill(dho_world, tmp_path / "a")
    second = _distill(dho_world, tmp_path / "b", task=other)
    assert first["dual_head"] == second["dual_head"]
    a, b = (load_file(str(tmp_path / run / "student.safetensors")) for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
