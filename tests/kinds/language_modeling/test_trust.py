"""Teachers against the student for language models: teachers behind the student's starting point are not
distilled, and a method left with none trains exactly as its baseline does."""

from __future__ import annotations

import json

import numpy as np
from safetensors.torch import load_file

from xdistill.kinds.language_modeling import run as lm_run
from xdistill.kinds.language_modeling.trust import teachers_ahead
from tests.conftest import run_cli

from .conftest import STUDENT_KNOBS

KNOBS = [f"student.knobs.{k}={v}" for k, v in STUDENT_KNOBS.items()]


def test_only_teachers_below_the_students_start_are_kept_in_order():
    assert teachers_ahead(3.0, {"a": 2.5, "b": 3.5, "c": 2.9, "d": float("nan")}) == (["a", "c"], ["b", "d"])
    assert teachers_ahead(3.0, {"a": 3.0}) == ([], ["a"])  # as good is not ahead
    assert teachers_ahead(9.0, {"a": 3.0, "b": 4.0}) == (["a", "b"], [])  # a student from scratch keeps them all


def _generic(lm_world, tmp_path):
    generic = tmp_path / "generic.safetensors"
    assert run_cli("pretrain", "--task", str(lm_world.task), "--out", str(generic), "--epochs", "1",
                   f"tokenizer={lm_world.tokenizer}", "progress=false", *KNOBS) == 0
    return generic


def _distill(lm_world, method, out, *extra):
    return run_cli("distill", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--method", method,
                   "--out", str(out), "--cache", str(lm_world.cache), "--epochs", "2", "progress=false", "lr=0.003",
                   *extra)


def test_the_decision_compares_each_teacher_with_the_students_start(lm_world, tmp_path):
    generic = _generic(lm_world, tmp_path)
    assert _distill(lm_world, "weighted", tmp_path / "weighted", f"init={generic}") == 0
    metrics = json.loads((tmp_path / "weighted" / "metrics.json").read_text())
    start = metrics["anneal"]["student_start_bits_per_byte"]
    scores = {t["name"]: t["scores"]["bits_per_byte"] for t in metrics["ranking"]["teachers"]}
    assert set(metrics["teachers"]) == {n for n, bpb in scores.items() if bpb < start}
    assert metrics["anneal"]["teachers_behind"] == [n for n, bpb in scores.items() if bpb >= start]
    assert sum(t["weight"] for t in metrics["teachers"].values()) == np.float64(1.0) or not metrics["teachers"]
    off = tmp_path / "off"
    assert _distill(lm_world, "weighted", off, f"init={generic}", "anneal=false") == 0
    assert "anneal" not in json.loads((off / "metrics.json").read_text())


def test_a_method_with_every_teacher_behind_trains_exactly_as_finetune(lm_world, tmp_path, monkeypatch):
    generic = _generic(lm_world, tmp_path)
    monkeypatch.setattr(lm_run, "teachers_ahead", lambda start, scores: ([], list(scores)))
    assert _distill(lm_world, "nearest", tmp_path / "nearest", f"init={generic}") == 0
    assert run_cli("distill", "--task", str(lm_world.task), "--method", "finetune", "--out", str(tmp_path / "finetune"),
                   "--epochs", "2", "progress=false", "lr=0.003", f"init={generic}") == 0
    nearest = json.loads((tmp_path / "nearest" / "metrics.json").read_text())
    assert nearest["teachers"] == {} and any("not distilled" in note for note in nearest["notes"])
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("nearest", "finetune"))
    for key in a:  # the same init, data order and steps: the same weights, bitwise
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key
