"""Teachers against the student: the distillation weight and the per-sample choice of target.

The rules are checked on numbers worked out by hand, then the whole mechanism through the real
CLI on a tiny task: a teacher that hashes its input to noise drives the weight to zero and every
sample to the student's own target; a teacher that reads the class off a pixel the student cannot decode keeps it high.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.conftest import Interrupt, interrupt_after_checkpoint
from xdistill.cli.main import main
from xdistill.data import save_task, task_from_arrays
from xdistill.kinds.classification.trust import (
    agreement_decision,
    chance_corrected,
    distill_weight,
    held_out_labels,
    route,
)

CLASSES = 3
SIZE = 8


def test_weight_falls_to_zero_as_the_student_overtakes_the_teachers():
    full = (0.80 - 0.1) / 0.9  # chance-corrected reliability of teachers at 0.80 with 10 classes
    assert distill_weight(0.80, 0.93, 10, margin=0.05) == 0.0  # the teachers lose: plain FixMatch
    assert distill_weight(0.80, 0.85, 10, margin=0.05) == pytest.approx(0.0, abs=1e-12)
    assert distill_weight(0.80, 0.825, 10, margin=0.05) == pytest.approx(0.25 * full, rel=1e-9)
    assert distill_weight(0.80, 0.80, 10, margin=0.05) == pytest.approx(0.5 * full, rel=1e-12)  # a tie: half
    assert distill_weight(0.80, 0.75, 10, margin=0.05) == pytest.approx(full, rel=1e-12)
    assert distill_weight(0.80, 0.30, 10, margin=0.05) == pytest.approx(full, rel=1e-12)
    assert chance_corrected(0.05, 10) == 0.0


def test_held_out_labels_keep_a_fifth_of_each_class_and_singletons():
    labels = np.array([0] * 10 + [1] * 5 + [2])
    train, held = held_out_labels(labels, 3, seed=0)
    assert np.bincount(labels[held], minlength=3).tolist() == [2, 1, 0]
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(len(labels)))
    assert held_out_labels(labels, 3, seed=0)[1].tolist() == held.tolist()


def test_route_at_weight_zero_is_fixmatch_mask():
    student = torch.tensor([[0.97, 0.02, 0.01], [0.5, 0.3, 0.2], [0.01, 0.96, 0.03]])
    teacher = torch.tensor([[0.0, 1.0, 0.0]] * 3)
    own, to_teacher = route(student, teacher, weight=0.0, teacher_reliability=1.0, student_reliability=0.5,
                            threshold=0.95)
    assert own.tolist() == [True, False, True]
    assert not to_teacher.any()
    # Trusted teachers take the confident samples too when r_t * p_t beats r_s * p_s, and all unconfident ones.
    own, to_teacher = route(student, teacher, weight=1.0, teacher_reliability=0.9, student_reliability=0.5,
                            threshold=0.95)
    assert own.tolist() == [False, False, False] and to_teacher.all()
    own, to_teacher = route(student, teacher, weight=1.0, teacher_reliability=0.5, student_reliability=0.9,
                            threshold=0.95)
    assert own.tolist() == [True, False, True] and to_teacher.tolist() == [False, True, False]


def test_one_label_per_class_falls_back_to_agreement():
    rng = np.random.default_rng(0)
    centres = 5.0 * np.eye(CLASSES)
    y_unl = np.arange(300) % CLASSES
    labeled = centres + 0.1 * rng.normal(size=(CLASSES, CLASSES))
    unlabeled = centres[y_unl] + 0.5 * rng.normal(size=(300, CLASSES))
    truth = np.eye(CLASSES)[y_unl]
    permuted = np.eye(CLASSES)[(y_unl + 1) % CLASSES]  # every class renamed: never the student's class
    right = agreement_decision(labeled, np.arange(CLASSES), unlabeled, truth, CLASSES)
    wrong = agreement_decision(labeled, np.arange(CLASSES), unlabeled, permuted, CLASSES)
    assert right.estimate == wrong.estimate == "agreement"
    assert right.agreement > 0.9 and right.weight > 0.85
    assert wrong.agreement < 0.1 and wrong.weight == 0.0


# ---------------------------------------------------------------------------
# Through the CLI


def coded_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noise images [n, 8, 8] whose class [n] is the first pixel's value mod 3: a teacher reads it
    exactly, a small CNN cannot learn it from 30 labels in a few steps."""
    x = rng.integers(0, 256, size=(n, SIZE, SIZE)).astype(np.uint8)
    y = np.arange(n) % CLASSES
    x[:, 0, 0] = (x[:, 0, 0] // CLASSES) * CLASSES + y
    return x, y.astype(np.int64)


class CodeTeacher(nn.Module):
    """Perfect teacher: features and logits [N, 3] are the one-hot class read off the first pixel."""

    def forward(self, x: torch.Tensor):
        code = torch.remainder(torch.round(x[:, 0, 0, 0] * 255.0), CLASSES).long()
        onehot = 5.0 * nn.functional.one_hot(code, CLASSES).float()
        return onehot, onehot


class NoiseTeacher(nn.Module):
    """Useless teacher: outputs [N, 3] hashed from the input, with no class information."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("projection", torch.randn(SIZE * SIZE, 3, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor):
        h = torch.frac(torch.sin(x.flatten(1) @ self.projection) * 43758.5453).abs()
        return h, h


def write_world(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    lab, unl, test = coded_images(30, rng), coded_images(60, rng), coded_images(15, rng)
    task = save_task(task_from_arrays("coded", ["a", "b", "c"], lab, unl[0], test, "image"), root / "task")
    zoos = {}
    for name, net in (("perfect", CodeTeacher()), ("noise", NoiseTeacher())):
        torch.jit.save(torch.jit.trace(net.eval(), torch.zeros(2, 1, SIZE, SIZE)), str(root / f"{name}.pt"))
        entry = {"name": name, "kind": "torchscript", "path": f"{name}.pt", "labels": ["x", "y", "z"],
                 "input": {"size": [SIZE, SIZE], "channels": 1, "mean": [0.0], "std": [1.0]}}
        zoos[name] = root / f"zoo-{name}.yaml"
        zoos[name].write_text(yaml.safe_dump({"teachers": [entry]}))
    return {"task": task, **zoos}


@pytest.fixture(scope="module")
def coded(tmp_path_factory) -> dict[str, Path]:
    return write_world(tmp_path_factory.mktemp("coded"))


def decisions(world: dict[str, Path], zoo: str, out: Path, *extra: str) -> list[dict]:
    with pytest.raises(SystemExit) as exit_:
        main(["distill", "--task", str(world["task"]), "--zoo", str(world[zoo]), "--cache", str(out.parent / "cache"),
              "--method", "weighted", "--out", str(out), "epochs=3", "batch_size=6", "unlabeled_ratio=2",
              "progress=false", *extra])
    assert exit_.value.code == 0
    curves = json.loads((out / "metrics.json").read_text())["curves"]
    return [{**r["decisions"], "teacher_share": r["train"]["teacher_share"]} for r in curves]


def test_useless_teacher_gets_no_weight_and_no_sample(coded, tmp_path):
    found = decisions(coded, "noise", tmp_path / "noise")
    assert len(found) == 3
    for epoch in found:
        assert epoch["teacher_reliability"] < 0.6  # chance is 1/3; 30 held-out labels
        assert epoch["distill_weight"] <= 0.05
        assert epoch["teacher_share"] <= 0.05


def test_perfect_teacher_keeps_its_weight(coded, tmp_path):
    found = decisions(coded, "perfect", tmp_path / "perfect")
    # Epochs 1-2 measure the student on held-out labels; in the last third (epoch 3) they rejoin the training
    # and the mean of the weights decided so far stands.
    assert [e["labels"] for e in found] == ["held out", "held out", "all"]
    assert found[2]["distill_weight"] == pytest.approx((found[0]["distill_weight"] + found[1]["distill_weight"]) / 2,
                                                       rel=1e-12)
    for epoch in found:
        assert epoch["teacher_reliability"] >= 0.9
        assert epoch["student_reliability"] < epoch["teacher_reliability"]
        assert epoch["distill_weight"] >= 0.5
        assert epoch["teacher_share"] >= 0.5


def test_a_resumed_run_makes_the_same_decisions(coded, tmp_path, monkeypatch):
    """Cut after epoch 2 of 3, the resumed run's last epoch reuses the decision its history holds."""
    full = decisions(coded, "perfect", tmp_path / "full")
    restore = interrupt_after_checkpoint(monkeypatch, 2)
    with pytest.raises(Interrupt):
        decisions(coded, "perfect", tmp_path / "cut")
    restore()
    assert decisions(coded, "perfect", tmp_path / "cut", "--resume") == full
