"""Feature distillation through a layout projector (config 'projector') from the CLI, its settings checked
before work, and the stage each projector kind reads from a student's forward pass."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_cli, write_task
from xdistill.kinds.classification.run import projectors
from xdistill.kinds.classification.steps import FeaturesAndLogits
from xdistill.losses.alignment import layout, layout_shape, split_layout
from xdistill.students import build_student
from xdistill.train.config import DistillConfig


@pytest.mark.parametrize("student", ["vit", "cnn"])
def test_attention_projector_trains_with_the_student_and_stays_out_of_it(tmp_path, tiny_zoo, student):
    task = write_task(tmp_path / "task")
    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "cache"),
                   "--out", str(out), "--student", student, "feature_weight=1", "projector=attention",
                   "--epochs", "2", "progress=false", "batch_size=4") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(r["train"]["feature"] > 0 for r in metrics["curves"])
    checkpoint = load_file(str(out / "checkpoint.safetensors"))
    assert any("projectors" in key and "queries" in key for key in checkpoint)  # checkpointed for resume
    weights = load_file(str(out / "student.safetensors"))
    assert set(weights) == set(build_student(student, (1, 8, 8), 3).state_dict())


@pytest.mark.parametrize(("args", "message"), [
    (["projector=attention"], "only feature distillation uses. Set feature_weight > 0"),
    (["projector=attention", "feature_weight=1", "--student", "mlp"], "student 'mlp' has no stages"),
    (["projector=attention", "feature_weight=1", "feature_loss=rkd"], "'rkd' does not"),
    (["projector=conv", "feature_weight=1"], "'projector' must be one of linear, pool, attention"),
])
def test_projector_settings_are_checked_before_work(tmp_path, tiny_zoo, capsys, args, message):
    task = write_task(tmp_path / "task")
    assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--out", str(tmp_path / "run"),
                   *args, "--epochs", "1") == 2
    assert message in capsys.readouterr().err


class _StagedStudent(torch.nn.Module):
    """A student whose stages differ in values and shapes: a map (2, 3, 3), tokens (4, 6), tokens (5, 6) and pooled
    features of width 6, so the layout says which stage it was built from."""

    input_shape = (1, 4, 4)
    feature_dim = 6

    def __init__(self, stage_shapes: list[tuple[int, ...]]) -> None:
        super().__init__()
        self.stage_shapes = stage_shapes
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.head = torch.nn.Linear(6, 3)

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        n = len(x)
        stages = [self.scale * (i + 1) * torch.arange(math.prod(s), dtype=x.dtype).expand(n, -1).reshape(n, *s)
                  for i, s in enumerate(self.stage_shapes)]
        return self.scale * x.flatten(1)[:, :6], stages

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_with_stages(x)[1]


@pytest.mark.parametrize(("kind", "stage_shapes", "read"), [
    ("attention", [(2, 3, 3), (4, 6), (5, 6)], 1),  # the stage before the last
    ("pool", [(2, 3, 3), (4, 6), (5, 6)], 2),  # the last
    ("attention", [(4, 6)], 0),  # a one-stage student: its only stage
])
def test_the_projector_kind_chooses_the_stage_that_reaches_it(kind, stage_shapes, read):
    student, x = _StagedStudent(stage_shapes), torch.randn(3, 1, 4, 4)
    features, _, _, rows = FeaturesAndLogits(student, projector=kind)(x)
    features, stages = student.forward_with_stages(x)
    torch.testing.assert_close(rows, layout(features, stages[read]), rtol=0, atol=0)
    config = DistillConfig(feature_weight=1.0, projector=kind, seed=3)
    targets = SimpleNamespace(features={"a": {"labeled": np.zeros((2, 7))}, "b": {"labeled": np.zeros((2, 5))}})
    built = projectors(config, student, targets)
    assert built["a"].layout_shape == layout_shape(6, stage_shapes[read])
    assert built["b"](rows).shape == (3, 5)
    if kind == "attention":  # each teacher's branch has a seed of its own
        assert not torch.equal(built["a"].branch.queries, built["b"].branch.queries)


def test_gradients_reach_the_attention_branch_and_the_stage_it_reads_after_the_first_step():
    """In a real ViT (depth 2, class token) the branch reads the first block's patch tokens, which feed the class
    token the head reads: after one step its output layer is non-zero, and the branch's loss reaches the student."""
    torch.manual_seed(0)
    student = build_student("vit", (1, 8, 8), 3)
    config = DistillConfig(feature_weight=1.0, projector="attention")
    targets = SimpleNamespace(features={"a": {"labeled": np.zeros((2, 5))}})
    projector = projectors(config, student, targets)["a"]
    assert projector.branch.position.shape[1:] == (4, 32)  # (8 / 4)^2 patches of the first block, width 32
    forward = FeaturesAndLogits(student, projector="attention")
    optimiser = torch.optim.SGD([*student.parameters(), *projector.parameters()], lr=0.5)
    x, teacher = torch.randn(4, 1, 8, 8), torch.randn(4, 5)
    for step in range(2):
        optimiser.zero_grad()
        rows = forward(x)[3]
        branch = projector.branch(split_layout(rows, projector.layout_shape)[1])
        ((projector(rows) - teacher) ** 2).mean().backward()
        if step == 1:  # the branch is non-zero: its own weights and the first block take its gradient
            assert branch.abs().max() > 0
            assert projector.branch.key.weight.grad.abs().max() > 0
        optimiser.step()
    student.zero_grad()
    rows = forward(x)[3]
    projector.branch(split_layout(rows, projector.layout_shape)[1]).sum().backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in student.blocks[0].parameters())
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in student.blocks[1].parameters())
