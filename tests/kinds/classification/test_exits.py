"""One-for-All exits: a branch per intermediate stage, trained by the ofa loss, left out of the student."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from xdistill.kinds.classification.exits import exit_branches
from xdistill.students import build_student
from tests.conftest import run_cli, write_task


@pytest.mark.parametrize(("name", "kind"), [("cnn", "map"), ("resnet", "map"), ("vit", "tokens"), ("mixer", "tokens")])
def test_one_branch_per_intermediate_stage_maps_it_to_the_classes(name, kind):
    torch.manual_seed(0)
    student = build_student(name, (1, 16, 16), 5, depth=3) if name in ("cnn", "vit", "mixer") else \
        build_student(name, (1, 16, 16), 5)
    exits = exit_branches(student, 5)
    stages = student.forward_stages(torch.randn(4, 1, 16, 16))
    assert len(exits.branches) == len(stages) - 1
    logits = exits(stages[:-1])
    assert [tuple(z.shape) for z in logits] == [(4, 5)] * (len(stages) - 1)
    first = exits.branches[0][0]
    assert isinstance(first, torch.nn.Conv2d if kind == "map" else type(first))  # conv maps get a 1x1 conv


def test_distill_with_ofa_trains_exits_and_exports_the_student_alone(tmp_path, tiny_zoo):
    task = write_task(tmp_path / "task")
    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "cache"),
                   "--out", str(out), "--method", "weighted", "--student", "vit", "loss=ofa", "--epochs", "2",
                   "progress=false", "batch_size=4") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0
    weights = load_file(str(out / "student.safetensors"))
    assert not any(key.startswith("exits") or "branches" in key for key in weights)
    plain = build_student("vit", (1, 8, 8), 3)
    assert set(weights) == set(plain.state_dict())  # the exported student is the student alone


def test_ofa_with_a_student_without_stages_is_refused_before_work(tmp_path, tiny_zoo, capsys):
    task = write_task(tmp_path / "task")
    assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--out", str(tmp_path / "run"),
                   "--student", "mlp", "loss=ofa", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "'loss=ofa' trains exit branches" in err and "student 'mlp' has no stages" in err and "vit" in err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
