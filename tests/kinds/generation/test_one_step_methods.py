"""The one-step methods (dmd, sid, multi-student) through the real CLI on the tiny world, and what each trains."""

from __future__ import annotations

import json

import pytest
import torch

from xdistill.cli.main import main
from xdistill.kinds.generation.methods import METHODS, MethodContext
from xdistill.models.denoiser import load_denoiser
from xdistill.train.config import DistillConfig

FAST = ["iterations=2", "batch_size=4", "progress=false"]


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def distill(gen_world, tmp_path, capsys, method, *extra):
    out = tmp_path / method
    code, _, err = run_cli(["distill", "--task", str(gen_world.task), "--zoo", str(gen_world.zoo), "--method", method,
                            "--out", str(out), *FAST, *extra], capsys)
    assert code == 0, err
    return out, json.loads((out / "metrics.json").read_text())


def test_dmd_with_the_gan_term_is_a_scored_one_step_run(gen_world, tmp_path, capsys):
    out, metrics = distill(gen_world, tmp_path, capsys, "dmd", "fake_updates=2")  # the GAN term is on by default
    assert metrics["test"]["steps"] == 1 and metrics["test"]["network_evaluations"] == 1
    assert metrics["sampling"] == {"steps": 1, "guidance": 1.0}
    history = metrics["history"][0]
    assert history["iterations"] == 2 and history["fake_updates"] == 4 and "discriminator_loss" in history
    assert metrics["data_free"] is False  # the GAN term reads training images
    student, config = load_denoiser(out / "student")
    teacher, _ = load_denoiser(gen_world.teacher)
    assert config["steps"] == 1 and student.config == teacher.config  # the generator is the teacher's network


def test_dmd_without_the_gan_term_and_sid_are_data_free(gen_world, tmp_path, capsys):
    _, dmd = distill(gen_world, tmp_path, capsys, "dmd", "gan_weight=0")
    assert dmd["data_free"] is True and dmd["history"][0]["fake_updates"] == 2 * 5  # DMD2's five per update
    assert "discriminator_loss" not in dmd["history"][0]
    out, sid = distill(gen_world, tmp_path, capsys, "sid")
    assert sid["data_free"] is True and json.loads((out / "student.json").read_text())["data_free"] is True
    assert sid["history"][0]["fake_updates"] == 2 and sid["history"][0]["alpha"] == 1.2
    assert sid["test"]["network_evaluations"] == 1


def test_sid_trains_without_a_single_training_image(gen_world):
    teacher, _ = load_denoiser(gen_world.teacher)
    ctx = MethodContext(teacher=teacher, x0=torch.empty(0, 1, 8, 8), y=torch.empty(0, dtype=torch.long),
                        config=DistillConfig(), guidance=2.0, steps=1, iterations=2, batch_size=4, lr=1e-3,
                        teacher_steps=4)
    result = METHODS.get("sid").train(ctx)
    before = dict(teacher.named_parameters())
    changed = [n for n, p in result.student.named_parameters() if not torch.equal(p, before[n])]
    assert changed  # the generator moved from the teacher with no image to learn from
    with pytest.raises(RuntimeError):
        ctx.batch()  # and none could have been drawn


def test_multi_student_saves_each_student_and_scores_each_on_its_classes(gen_world, tmp_path, capsys):
    out, metrics = distill(gen_world, tmp_path, capsys, "multi-student", "num_students=3", "student.knobs.width=8",
                           "student.knobs.mults=[1]", "student.knobs.attention=false")
    members = metrics["members"]
    stages = [h["stage"] for h in metrics["history"]]
    assert len(stages) == 6 and "teacher score matching" in stages[0] and "distribution matching" in stages[1]
    assert [m["classes"] for m in members] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    teacher, _ = load_denoiser(gen_world.teacher)
    teacher_params = sum(p.numel() for p in teacher.parameters())
    assert all(m["params"] < teacher_params / 2 for m in members)
    assert metrics["params"] == sum(m["params"] for m in members)
    assert sum(m["samples"] for m in members) == metrics["test"]["samples"]
    assert all(0 <= m["class_consistency"] <= 1 and m["frechet_distance"] >= 0 for m in members)
    for index in range(3):
        assert (out / "student" / "members" / str(index) / "model.safetensors").is_file()
    code, _, err = run_cli(["eval", str(out), "--json", str(tmp_path / "ms.json")], capsys)
    assert code == 0, err
    scores = json.loads((tmp_path / "ms.json").read_text())
    assert scores["frechet_distance"] == pytest.approx(metrics["test"]["frechet_distance"], rel=1e-9)
    assert [m["params"] for m in scores["members"]] == [m["params"] for m in members]
    code, _, err = run_cli(["generate", str(out), "--n", "4", "--guidance", "2", "--out", str(tmp_path / "g.npz")],
                           capsys)
    assert code == 2 and "guidance 1" in err


def test_bad_one_step_options_are_refused_together(gen_world, tmp_path, capsys):
    code, _, err = run_cli(["distill", "--task", str(gen_world.task), "--zoo", str(gen_world.zoo), "--method", "dmd",
                            "--out", str(tmp_path / "x"), "fake_updates=50", "gan_weight=-1", "sid_alpha=3"], capsys)
    assert code == 2 and "fake_updates" in err and "gan_weight" in err and "sid_alpha" in err
    code, _, err = run_cli(["distill", "--task", str(gen_world.task), "--zoo", str(gen_world.zoo), "--method",
                            "multi-student", "--out", str(tmp_path / "y"), "num_students=11", *FAST], capsys)
    assert code == 2 and "'num_students' must be at most the task's 10 classes" in err
