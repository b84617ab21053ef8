"""``xdistill report``: real runs side by side, every cell traced back to each run's metrics.json,
and every refusal one clear line with exit status 2 before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.report.helpers import cell_numbers, decode_images, external_references, tables_by_id
from xdistill.errors import XDistillError
from xdistill.report.compare import load_runs, plot_labels, write_compare_report

# Cells show 4 significant digits: a value v reads back within half a unit of its 4th digit.
FOUR_DIGITS_RTOL = 5e-4


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _close(cell: str, value: float) -> bool:
    return cell_numbers(cell)[0] == pytest.approx(value, rel=FOUR_DIGITS_RTOL, abs=1e-12)


def test_cli_writes_a_report_of_every_run(distilled_runs, tmp_path, capsys):
    folders = list(distilled_runs.values())
    out = tmp_path / "reports" / "compare.html"
    assert run_cli("report", *map(str, folders), "--out", str(out)) == 0
    assert str(out) in capsys.readouterr().out
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temporary file left behind
    text = out.read_text()
    assert external_references(text) == []
    assert len(decode_images(text)) == 4  # per-class bars, calibration bars, cost, learning curves
    tables = tables_by_id(text)

    methods = tables["methods"]
    assert methods["header"][:5] == ["run", "method", "seed", "epochs", "test accuracy"]
    assert [row[1] for row in methods["rows"]] == list(distilled_runs)
    for row, folder in zip(methods["rows"], folders):
        m = _metrics(folder)
        assert row[2] == str(m["seed"]) and row[3] == "2"
        for cell, value in zip(row[4:8], (m["test"]["accuracy"], m["test"]["macro_f1"], m["test"]["ece"],
                                          m["test"]["nll"])):
            assert _close(cell, value), (cell, value)
        assert row[8] == str(m["cost"]["params"]) and row[9] == str(m["cost"]["flops"])
        assert _close(row[10], m["cost"]["cpu_latency_ms_per_sample"])

    per_class = tables["per-class"]
    assert len(per_class["header"]) == 1 + len(folders)
    for c, row in enumerate(per_class["rows"]):
        for cell, folder in zip(row[1:], folders):
            assert _close(cell, _metrics(folder)["test"]["per_class_accuracy"][c])

    curves = tables["curves"]
    assert [row[0] for row in curves["rows"]] == ["1", "2"]
    for cell, folder in zip(curves["rows"][1][1:], folders):
        assert _close(cell, _metrics(folder)["curves"][1]["test"]["accuracy"])

    # Only the teacher methods have teachers; each row's gap is the student minus its best teacher.
    teachers = {row[0].split(" ")[0]: row for row in tables["teachers"]["rows"]}
    assert set(teachers) == {"weighted", "nearest", "partition"}
    for method, row in teachers.items():
        m = _metrics(distilled_runs[method])
        best = max(m["teachers"]["teachers"].items(), key=lambda kv: kv[1]["test_accuracy"])
        assert row[2] == best[0] and _close(row[3], best[1]["test_accuracy"])
        gap = m["test"]["accuracy"] - best[1]["test_accuracy"]
        assert cell_numbers(row[4])[0] == pytest.approx(gap, abs=6e-5)
        assert row[-1] == ("below its best teacher" if gap < 0 else "at or above")


def test_a_run_below_its_best_teacher_is_flagged(distilled_runs, tmp_path):
    low = tmp_path / "run-low"
    shutil.copytree(distilled_runs["weighted"], low)
    metrics = _metrics(low)
    best = max(t["test_accuracy"] for t in metrics["teachers"]["teachers"].values())
    metrics["test"]["accuracy"] = best - 0.1
    (low / "metrics.json").write_text(json.dumps(metrics))
    runs = load_runs([distilled_runs["supervised"], low])
    text = write_compare_report(runs, tmp_path / "c.html").read_text()
    assert 'class="flag" id="shortfall-1"' in text and "shortfall-0" not in text
    assert "ended below its best teacher" in text


def test_runs_that_read_alike_are_told_apart_by_folder(distilled_runs, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(distilled_runs["supervised"], copy)
    runs = load_runs([distilled_runs["supervised"], copy])
    assert [r.label for r in runs] == ["supervised (seed 0) run-supervised", "supervised (seed 0) again"]


def test_plot_labels_stay_short_and_distinct():
    long_a, long_b = "weighted (seed 0) " + "a" * 60 + "-one", "weighted (seed 0) " + "a" * 60 + "-two"
    short = plot_labels(["supervised (seed 0)", long_a, long_b])
    assert short["supervised (seed 0)"] == "supervised (seed 0)"
    assert all(len(s) <= 40 for s in short.values()) and len(set(short.values())) == 3
    assert short[long_a].endswith("-one") and "..." in short[long_a]
    assert plot_labels(["x" * 50 + "1" + "y" * 50, "x" * 50 + "2" + "y" * 50]) == {
        "x" * 50 + "1" + "y" * 50: "run 1", "x" * 50 + "2" + "y" * 50: "run 2"}


def test_runs_of_different_tasks_are_refused_by_name(distilled_runs, tmp_path, capsys):
    other = tmp_path / "other-task-run"
    shutil.copytree(distilled_runs["weighted"], other)
    metrics = _metrics(other)
    metrics["task"] = "another"
    (other / "metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "c.html"
    assert run_cli("report", str(distilled_runs["supervised"]), str(other), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "different tasks" in err and "'tiny'" in err and "'another'" in err and str(other) in err
    assert not out.exists()


def test_unfinished_runs_and_a_bad_out_are_all_reported_at_once(distilled_runs, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("method: weighted\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    missing = tmp_path / "missing"
    assert run_cli("report", str(unfinished), str(broken), str(missing), str(distilled_runs["supervised"]),
                   "--out", str(tmp_path / "c.txt")) == 2
    err = capsys.readouterr().err
    assert "(4 problems)" in err
    assert f"'{unfinished}' is not a finished run: it has no metrics.json" in err and "resume=true" in err
    assert f"{broken / 'metrics.json'}' cannot be read as JSON" in err
    assert f"'{missing}' is not a folder" in err
    assert "--out must name an .html file. Got" in err
    assert not (tmp_path / "c.txt").exists()
    with pytest.raises(XDistillError, match="is a folder; expected an .html file path"):
        load_runs([distilled_runs["supervised"]], out=tmp_path)


def test_reliability_bins_draw_a_diagram_instead_of_bars(distilled_runs, tmp_path):
    runs = []
    for i, method in enumerate(("supervised", "weighted")):
        folder = tmp_path / method
        shutil.copytree(distilled_runs[method], folder)
        metrics = _metrics(folder)
        metrics["test"]["reliability"] = {"confidence": [0.35, 0.6, 0.9], "accuracy": [0.3, 0.5 + 0.1 * i, 0.8],
                                          "count": [3, 3, 3]}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        runs.append(folder)
    with_bins = write_compare_report(load_runs(runs), tmp_path / "bins.html").read_text()
    without = write_compare_report(load_runs([distilled_runs["supervised"], distilled_runs["weighted"]]),
                                   tmp_path / "bars.html").read_text()
    assert 'alt="reliability diagram, one line per run"' in with_bins and 'alt="ECE and NLL per run"' not in with_bins
    assert 'alt="ECE and NLL per run"' in without and "reliability diagram" not in without


def test_report_without_runs_is_a_usage_error(tmp_path, capsys):
    assert run_cli("report", "--out", str(tmp_path / "c.html")) == 2
    assert "Missing argument 'RUN'. See 'xdistill report --help'." in capsys.readouterr().err
