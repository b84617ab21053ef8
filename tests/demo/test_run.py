"""``xdistill demo``: every method on every target of the world, then one summary across targets."""

from __future__ import annotations

import dataclasses

import pytest

from xdistill.demo import run, world


def _result(accuracy: float) -> dict:
    return {"test": {"accuracy": accuracy}}


def test_summary_averages_targets_and_gives_weighted_gaps_in_points():
    results = {
        "a": {"supervised": _result(0.50), "fixmatch": _result(0.60), "weighted": _result(0.80)},
        "b": {"supervised": _result(0.90), "fixmatch": _result(0.95), "weighted": _result(0.94)},
    }
    header, rows = run.summary_rows(results)
    assert header == ["method", "a", "b", "average"]
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["supervised"] == pytest.approx([0.50, 0.90, 0.70])
    assert by_name["weighted"] == pytest.approx([0.80, 0.94, 0.87])
    assert by_name["weighted - fixmatch (points)"] == pytest.approx([20.0, -1.0, 9.5])
    assert by_name["weighted - supervised (points)"] == pytest.approx([30.0, 4.0, 17.0])
    assert len(rows) == 5


def test_summary_without_weighted_has_no_gap_rows():
    header, rows = run.summary_rows({"a": {"supervised": _result(0.5)}, "b": {"supervised": _result(0.7)}})
    assert rows == [["supervised", 0.5, 0.7, pytest.approx(0.6)]]


def test_demo_runs_each_method_on_each_target_then_reuses_the_runs(tiny_world, tmp_path, monkeypatch, capsys):
    home, built, _ = tiny_world
    built = dataclasses.replace(built, task_paths=dict(list(built.task_paths.items())[:2]))  # two targets suffice
    monkeypatch.setattr(world, "build_world", lambda home, log: built)
    one_epoch = run.demo_config
    monkeypatch.setattr(run, "demo_config", lambda *a, **k: dataclasses.replace(one_epoch(*a, **k), epochs=1, progress=False))
    lines: list[str] = []
    results = run.run_demo(home=home, out=tmp_path / "runs", log=lines.append, methods=("supervised", "weighted"))
    assert set(results) == set(built.task_paths)
    for task in built.task_paths:
        assert set(results[task]) == {"supervised", "weighted"}
        assert (tmp_path / "runs" / task / "weighted" / "report.html").is_file()
    printed = capsys.readouterr().out
    assert "All targets: test accuracy" in printed and "weighted - supervised (points)" in printed

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    from xdistill.pipeline import distill

    monkeypatch.setattr(distill, "distill", no_training)
    assert run.run_demo(home=home, out=tmp_path / "runs", log=lines.append, methods=("supervised", "weighted")) == results
