"""Feature distillation through a layout projector (config 'projector') from the CLI, and its settings
checked before work."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tests.conftest import run_cli, write_task
from xdistill.students import build_student


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
