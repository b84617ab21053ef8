"""A tiny matrix end to end: two targets x two methods x two students x two seeds x one epoch; its summary
checked against the runs, its Markdown and HTML report (tables and heat-map), a method a student cannot run
shown as n/a, and a second call that trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, write_task, write_zoo
from tests.report.helpers import cell_numbers, decode_images, tables_by_id
from xdistill.bench.matrix import run_matrix, unsupported
from xdistill.bench.suite import BenchConfig, BenchTarget
from xdistill.errors import XDistillError
from xdistill.runtime import Runtime

METHODS = ["weighted", "weighted+loss=ofa"]
STUDENTS = ["cnn", "mlp"]


def _matrix(root: Path) -> dict:
    suite = [BenchTarget(root / "task-a", root / "zoo" / "zoo.yaml", name="a"),
             BenchTarget(root / "task-b", root / "zoo" / "zoo.yaml", name="b")]
    bench = BenchConfig(seeds=2, methods=METHODS, students=STUDENTS, out=str(root / "out"), epochs=1,
                        cache_dir=str(root / "cache"), overrides={"batch_size": 4, "progress": False})
    return run_matrix(suite, bench, Runtime(log=None), progress=False)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    write_task(root / "task-a", seed=0)
    write_task(root / "task-b", seed=1)
    write_zoo(root / "zoo", n_teachers=2)
    return root, _matrix(root)


def test_every_student_runs_every_method_it_can(matrix):
    root, found = matrix
    cells = {(r["student"], r["task"], r["method"], r["seed"]) for r in found["runs"]}
    expected = {(s, t, m, seed) for s in STUDENTS for t in ("a", "b") for m in METHODS for seed in (0, 1)
                if not (s == "mlp" and m == "weighted+loss=ofa")}
    assert cells == expected
    assert "intermediate stages" in found["skipped"]["mlp"]["weighted+loss=ofa"]
    for run in found["runs"]:  # each student's runs hold its own family, trained from scratch
        config = (root / "out" / run["out"] / "config.yaml").read_text()
        assert f"name: {run['student']}" in config and "init: ''" in config


def test_summary_is_the_mean_and_std_of_the_runs(matrix):
    _, found = matrix
    summary = found["summary"]
    for target in ("a", "b"):
        values = [r["test"]["accuracy"] for r in found["runs"]
                  if (r["task"], r["method"], r["student"]) == (target, "weighted", "cnn")]
        mean, std = summary["per_target"][target]["weighted"]["cnn"]["accuracy"]
        assert mean == pytest.approx(np.mean(values), abs=1e-12)
        assert std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    per_seed = [np.mean([r["test"]["accuracy"] for r in found["runs"]
                         if (r["method"], r["student"], r["seed"]) == ("weighted", "mlp", s)]) for s in (0, 1)]
    assert summary["average"]["weighted"]["mlp"]["accuracy"][0] == pytest.approx(np.mean(per_seed), abs=1e-12)
    params = {r["student"]: r["cost"]["params"] for r in found["runs"]}
    assert {s: c["params"] for s, c in summary["cost"].items()} == params


def test_markdown_and_report_show_the_matrix_and_its_heat_map(matrix):
    root, found = matrix
    text = (root / "out" / "matrix.md").read_text()
    assert "| method | cnn | mlp |" in text and "| weighted+loss=ofa |" in text and "n/a" in text
    html = (root / "out" / "report.html").read_text()
    tables = tables_by_id(html)
    table = tables["matrix-a"]
    assert table["header"] == ["method", "cnn", "mlp"]
    row = next(r for r in table["rows"] if r[0] == "weighted")
    mean, _ = found["summary"]["per_target"]["a"]["weighted"]["cnn"]["accuracy"]
    assert cell_numbers(row[1])[0] == pytest.approx(mean, abs=5e-4)  # 4 significant digits
    assert next(r for r in table["rows"] if r[0] == "weighted+loss=ofa")[2] == "n/a"
    assert {"matrix-a", "matrix-b", "matrix-average", "cost"} <= set(tables)
    assert len(decode_images(html)) >= 2  # the heat-map and accuracy against cost


def test_a_second_call_reads_every_run_back(matrix):
    root, found = matrix
    stamps = {p: p.stat().st_mtime_ns for p in (root / "out").rglob("metrics.json")}
    again = _matrix(root)
    assert {p: p.stat().st_mtime_ns for p in (root / "out").rglob("metrics.json")} == stamps
    assert json.loads(json.dumps(again["summary"])) == json.loads(json.dumps(found["summary"]))


def test_unknown_or_non_image_students_are_refused_before_work(tmp_path):
    bench = BenchConfig(students=["vitt", "text-cnn"], methods=["weighted"], out=str(tmp_path / "out"))
    with pytest.raises(XDistillError) as error:
        run_matrix([BenchTarget(tmp_path, tmp_path / "zoo.yaml")], bench)
    assert "Unknown student 'vitt'" in str(error.value) and "'text-cnn' does not read images" in str(error.value)
    assert not (tmp_path / "out").exists()
    assert unsupported("weighted+loss=ofa", "vit") is None and unsupported("weighted", "mlp") is None
    assert "reads the student's stages" in unsupported("weighted+feature_weight=1+projector=attention", "mlp")


def test_cli_students_without_matrix_exit_2(capsys):
    assert run_cli("bench", "--students", "cnn,vit") == 2
    assert "--matrix --students" in capsys.readouterr().err
    assert run_cli("bench", "--matrix", "--students", "text-cnn") == 2
    assert "does not read images" in capsys.readouterr().err
