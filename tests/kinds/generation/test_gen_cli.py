"""The generation kind end to end through the real CLI, on the tiny world: distill with each method, eval a run
and a teacher folder, generate samples, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xdistill.cli.main import main

FAST = ["iterations=6", "teacher_steps=4", "batch_size=8", "progress=false"]


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("method", ["progressive", "consistency", "guidance"])
def test_distill_each_method_writes_a_scored_run(gen_world, tmp_path, capsys, method):
    out = tmp_path / method
    code, _, err = run_cli(["distill", "--task", str(gen_world.task), "--zoo", str(gen_world.zoo), "--method", method,
                            "--out", str(out), "steps=2", *FAST], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert metrics["kind"] == "generation" and metrics["headline"]["key"] == "frechet_distance"
    assert {"frechet_distance", "precision", "recall", "class_consistency", "samples_per_second", "steps"} <= set(test)
    assert test["steps"] == 2 and test["samples"] == 2000
    assert test["network_evaluations"] == 2  # guidance folded in: one evaluation per step
    assert 0 <= test["precision"] <= 1 and 0 <= test["recall"] <= 1 and test["frechet_distance"] >= 0
    assert (out / "samples.png").is_file() and (out / "student" / "model.safetensors").is_file()
    if method == "progressive":  # teacher_steps=4 -> one halving to 2 steps
        assert list(metrics["stages"]) == ["steps-2"]


def test_eval_and_generate_a_run_and_the_teacher(gen_world, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["distill", "--task", str(gen_world.task), "--zoo", str(gen_world.zoo), "--method",
                            "consistency", "--out", str(out), "steps=1", *FAST], capsys)
    assert code == 0, err
    code, _, err = run_cli(["eval", str(out), "--json", str(tmp_path / "run.json")], capsys)
    assert code == 0, err
    scores = json.loads((tmp_path / "run.json").read_text())
    saved = json.loads((out / "metrics.json").read_text())["test"]
    assert scores["frechet_distance"] == pytest.approx(saved["frechet_distance"], rel=1e-9)  # same seed, same samples

    code, _, err = run_cli(["eval", str(gen_world.teacher), "--task", str(gen_world.task), "--steps", "3",
                            "--json", str(tmp_path / "teacher.json")], capsys)
    assert code == 0, err
    teacher = json.loads((tmp_path / "teacher.json").read_text())
    assert teacher["steps"] == 3 and teacher["guidance"] == 2.0 and teacher["network_evaluations"] == 6

    for source, extra in ((out, []), (gen_world.teacher, ["--guidance", "1", "--class", "7"])):
        path = tmp_path / f"{source.name}.npz"
        code, _, err = run_cli(["generate", str(source), "--n", "5", "--steps", "2", "--seed", "3", "--out", str(path),
                                *extra], capsys)
        assert code == 0, err
        with np.load(path) as samples:
            assert samples["x"].shape == (5, 8, 8) and samples["x"].dtype == np.float32
            assert 0 <= samples["x"].min() and samples["x"].max() <= 1
            assert samples["y"].shape == (5,)
            if extra:
                assert (samples["y"] == 7).all()


def test_user_errors_exit_2_with_one_line(gen_world, tmp_path, capsys):
    code, _, err = run_cli(["distill", "--task", str(gen_world.task), "--zoo", str(gen_world.zoo), "--method",
                            "consistensy", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "Did you mean 'consistency'" in err
    code, _, err = run_cli(["generate", str(gen_world.teacher), "--n", "2", "--out", str(tmp_path / "x.txt")], capsys)
    assert code == 2 and "--out FILE.npz" in err
    code, _, err = run_cli(["generate", str(gen_world.teacher), "--class", "12", "--out", str(tmp_path / "x.npz")], capsys)
    assert code == 2 and "--class must lie in 0..9" in err
    code, _, err = run_cli(["eval", str(gen_world.teacher)], capsys)
    assert code == 2 and "Pass --task" in err
