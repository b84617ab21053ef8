"""End-to-end: the real CLI on tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_cache_rank_distill_eval_export(tiny_task, tiny_zoo, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert run_cli("cache", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", cache, "--json", str(tmp_path / "c.json")) == 0
    first = json.loads((tmp_path / "c.json").read_text())
    assert set(first["queries"]) == {"t0", "t1"}
    assert run_cli("cache", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", cache, "--json", str(tmp_path / "c2.json")) == 0
    assert json.loads((tmp_path / "c2.json").read_text())["queries"] == {}

    assert run_cli("rank", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", cache, "--out", str(tmp_path / "rank.json")) == 0
    ranking = json.loads((tmp_path / "rank.json").read_text())
    assert [t["rank"] for t in ranking["teachers"]] == [1, 2]
    assert abs(sum(t["weight"] for t in ranking["teachers"]) - 1) < 1e-9
    assert all("logme" in t["scores"] for t in ranking["teachers"])

    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", cache, "--method", "weighted",
                   "--out", str(out), "--epochs", "2", "progress=false", "batch_size=4") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "ece", "nll", "per_class_accuracy", "agreement"):
        assert key in metrics["test"]
    assert metrics["cost"]["params"] > 0 and metrics["cost"]["flops"] > 0
    assert len(metrics["curves"]) == 2
    assert (out / "student.safetensors").is_file() and (out / "config.yaml").is_file()

    assert run_cli("eval", str(out), "--task", str(tiny_task), "--json", str(tmp_path / "e.json")) == 0
    assert json.loads((tmp_path / "e.json").read_text())["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    # without --task, a run is scored on the task its config.yaml names, by its kind (student.json)
    assert json.loads((out / "student.json").read_text())["kind"] == metrics["kind"] == "classification"
    assert run_cli("eval", str(out), "--json", str(tmp_path / "e2.json")) == 0
    assert json.loads((tmp_path / "e2.json").read_text()) == json.loads((tmp_path / "e.json").read_text())
    for fmt in ("onnx", "torchscript"):
        assert run_cli("export", str(out), "--format", fmt, "--json", str(tmp_path / f"{fmt}.json")) == 0
        assert json.loads((tmp_path / f"{fmt}.json").read_text())["max_abs_diff"] <= 1e-5


def test_user_errors_exit_2_without_traceback(tmp_path, tiny_task):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cases = [
        ["cache", "--task", str(tmp_path / "missing"), "--zoo", str(tmp_path / "zoo.yaml")],
        ["distill", "--task", str(tiny_task), "--method", "weigthed", "--out", str(tmp_path / "o")],
        ["distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(tmp_path / "o"), "epochs=-1"],
        ["distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(tmp_path / "o"), "epoch=3"],
        ["rank", "--task", str(tiny_task), "--zoo", str(tmp_path / "nozoo.yaml")],
    ]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "xdistill", *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "error:" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def test_unknown_override_lists_valid_keys(tiny_task, tmp_path, capsys):
    assert run_cli("distill", "--task", str(tiny_task), "--out", str(tmp_path / "o"), "--method", "supervised", "epoch=3") == 2
    err = capsys.readouterr().err
    assert "Did you mean 'epochs'" in err and "Valid keys" in err


def test_config_file_then_flags_then_overrides(tiny_task, tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"task: {tiny_task}\nmethod: supervised\nepochs: 5\nbatch_size: 4\nprogress: false\nseed: 3\n")
    out = tmp_path / "run"
    assert run_cli("distill", "--config", str(cfg), "--epochs", "2", "--out", str(out), "seed=4") == 0
    saved = (out / "config.yaml").read_text()
    assert "epochs: 2" in saved and "seed: 4" in saved and "batch_size: 4" in saved


def test_students_lists_families(capsys):
    assert run_cli("students", "--input-shape", "1,28,28", "--json", "-") == 0
    out = capsys.readouterr().out
    rows = json.loads(out[out.index("["):])
    names = {r["name"] for r in rows}
    assert {"cnn", "mlp", "vit"} <= names and all(r["params"] > 0 for r in rows if r["name"] in names)


@pytest.mark.parametrize("argv, message", [
    (["distill", "--epoch", "3"], "error: No such option: --epoch (Possible options: --epochs, --nproc). "
                                  "See 'xdistill distill --help'."),
    (["distill", "--epochs", "many"], "error: Invalid value for '--epochs'"),
    (["distil"], "error: No such command 'distil'. Did you mean 'distill'? See 'xdistill --help'."),
    (["rank", "--task"], "error: Option '--task' requires an argument."),
])
def test_usage_errors_are_one_line_with_exit_status_2(argv, message, capsys):
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert "Traceback" not in err and "╭" not in err


def test_bare_command_shows_its_help(capsys):
    assert run_cli() == 2
    assert "Usage: xdistill" in capsys.readouterr().out
