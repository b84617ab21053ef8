"""A tiny bench end to end: two targets x two methods x two seeds x one epoch, with
selection validation; its results, Markdown and HTML checked against each other,
and a second call that trains nothing."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_task, write_zoo
from tests.report.helpers import decode_images, external_references, tables_by_id
from xdistill.bench.suite import BenchConfig, BenchTarget, run_bench
from xdistill.errors import XDistillError
from xdistill.runtime import Runtime

METHODS = ("supervised", "weighted")
OVERRIDES = {"batch_size": 4, "progress": False}


def _bench(root: Path, **kw) -> dict:
    suite = [BenchTarget(root / "task-a", root / "zoo" / "zoo.yaml", name="a"),
             BenchTarget(root / "task-b", root / "zoo" / "zoo.yaml", name="b")]
    bench = BenchConfig(seeds=2, methods=list(METHODS), out=str(root / "out"), epochs=1, validate=True,
                        cache_dir=str(root / "cache"), overrides=OVERRIDES, **kw)
    return run_bench(suite, bench, Runtime(log=None), progress=False)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    write_task(root / "task-a", seed=0)
    write_task(root / "task-b", seed=1)
    write_zoo(root / "zoo", n_teachers=3)
    first = _bench(root)
    return root, first


def _decimals(value: float) -> int | None:
    """Decimals that show 4 significant digits of ``value`` (None: below 1e-3, shown as 1.234e-04)."""
    if value == 0:
        return 0
    rounded = abs(float(f"{value:.3e}"))
    return None if rounded < 1e-3 else max(0, 3 - math.floor(math.log10(rounded)))


def _sig4(value: float) -> str:
    decimals = _decimals(value)
    return f"{value:.3e}" if decimals is None else f"{value:.{decimals}f}"


def _cell(mean: float, std: float) -> str:
    """Both to the decimals that give the mean 4 significant digits."""
    decimals = _decimals(mean)
    if decimals is None:
        return f"{_sig4(mean)} ± {_sig4(std)}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else 0.0)


def expected_tables(results: dict) -> dict[str, list[list[str]]]:
    """The rows each bench table must show, recomputed here from results.json's runs."""
    runs = defaultdict(dict)
    for r in results["runs"]:
        runs[(r["task"], r["method"])][r["seed"]] = r
    targets, methods = results["targets"], results["methods"]
    accuracy, details = [], []
    for method in methods:
        row = [method]
        for target in targets:
            row.append(_cell(*_mean_std([r["test"]["accuracy"] for r in runs[(target, method)].values()])))
        seeds = sorted(runs[(targets[0], method)])
        row.append(_cell(*_mean_std([np.mean([runs[(t, method)][s]["test"]["accuracy"] for t in targets])
                                     for s in seeds])))
        accuracy.append(row)
    for target in targets:
        for method in methods:
            found = list(runs[(target, method)].values())
            details.append([target, method, str(len(found)),
                            *[_cell(*_mean_std([r["test"][k] for r in found]))
                              for k in ("accuracy", "macro_f1", "ece", "nll")],
                            str(found[0]["cost"]["params"]), str(found[0]["cost"]["flops"]),
                            _sig4(np.mean([r['cost']['cpu_latency_ms_per_sample'] for r in found]))])
    gaps = []
    for target in targets:
        mean = {m: np.mean([r["test"]["accuracy"] for r in runs[(target, m)].values()]) for m in methods}
        gaps.append(mean["weighted"] - mean["supervised"])  # supervised is the only baseline here
    # columns: weighted − best baseline, weighted − supervised (the bench's only baseline)
    gap_rows = [[t, _sig4(g), _sig4(g)] for t, g in zip(targets, gaps)]
    gap_rows.append(["average", _sig4(np.mean(gaps)), _sig4(np.mean(gaps))])
    weights = []
    for target in targets:
        first = runs[(target, "weighted")][0]
        weights += [[target, name, _sig4(t['weight']), _sig4(t['test_accuracy']), "0"]
                    for name, t in first["teachers"].items()]
    from xdistill.kinds.classification.methods import METHODS as REGISTERED

    described = [[m, REGISTERED.get(m).summary, "yes" if REGISTERED.get(m).teachers else "-",
                  "yes" if REGISTERED.get(m).unlabeled else "-", REGISTERED.get(m).init,
                  "yes" if REGISTERED.get(m).baseline else "-"] for m in methods]
    tables = {"accuracy": accuracy, "details": details, "gaps": gap_rows, "teacher-weights": weights,
              "methods": described}
    for target, found in results["validation"].items():
        tables[f"validation-{target}"] = [
            [m, *["-" if q[k] is None else _sig4(q[k]) for k in ("kendall_tau", "spearman_rho", "top1_regret")],
             q.get("top1") or "-"] for m, q in found["metrics"].items()]
    return tables


def test_bench_writes_every_run_and_its_outputs(bench):
    root, results = bench
    out = root / "out"
    assert results["ran"] == 8 and results["reused"] == 0
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["runs"]) == 8 and saved["epoch_reported"] == "last"
    assert {(r["task"], r["method"], r["seed"]) for r in saved["runs"]} == {
        (t, m, s) for t in "ab" for m in METHODS for s in (0, 1)}
    for run in saved["runs"]:
        assert set(run["test"]) == {"accuracy", "macro_f1", "ece", "nll"}
        assert run["cost"]["params"] > 0 and run["cost"]["flops"] > 0 and len(run["curves"]) == 1
        assert (run["teachers"] is None) == (run["method"] == "supervised")
        folder = out / run["out"]
        assert (folder / "metrics.json").is_file() and (folder / "report.html").is_file()
    weighted = [r for r in saved["runs"] if r["method"] == "weighted"]
    assert all(abs(sum(t["weight"] for t in r["teachers"].values()) - 1) < 1e-6 for r in weighted)
    assert set(saved["validation"]) == {"a", "b"} and set(saved["rankings"]) == {"a", "b"}
    assert set(saved["validation"]["a"]["accuracy"]) == {"t0", "t1", "t2"}


def test_reports_are_self_contained_and_images_decode(bench):
    root, results = bench
    for path in [root / "out" / "report.html", *sorted((root / "out").glob("*/*/seed-*/report.html"))]:
        text = path.read_text()
        assert external_references(text) == [], path
        assert "<script" not in text.lower()
        assert len(decode_images(text)) >= 1, path
    # accuracy bars, cost, teacher weights, 2 x metric scatter, 2 x learning curves
    assert len(decode_images((root / "out" / "report.html").read_text())) == 7


def test_every_bench_table_cell_comes_from_results_json(bench):
    root, _ = bench
    results = json.loads((root / "out" / "results.json").read_text())
    tables = tables_by_id((root / "out" / "report.html").read_text())
    expected = expected_tables(results)
    assert tables["accuracy"]["header"] == ["method", "a", "b", "average"]
    setup = dict(tables["setup"]["rows"])
    assert setup["runs"] == str(len(results["runs"])) and setup["epochs"] == str(results["epochs"])
    assert setup["methods"] == ", ".join(results["methods"]) and setup["epoch reported"] == "last"
    assert set(tables) == {"setup", *expected}, "a table without an independent check"
    for table_id, rows in expected.items():
        assert tables[table_id]["rows"] == rows, table_id


def test_markdown_table_matches_results_json(bench):
    root, _ = bench
    results = json.loads((root / "out" / "results.json").read_text())
    text = (root / "out" / "results.md").read_text()
    assert "last epoch" in text and "mean ± std over 2 seeds" in text
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip("|").split("|")])
        elif current:
            blocks.append(current)
            current = []
    accuracy, gaps = blocks
    expected = expected_tables(results)
    assert accuracy[0] == ["method", "a", "b", "average"] and accuracy[2:] == expected["accuracy"]
    assert gaps[2:] == expected["gaps"]


def test_second_call_trains_nothing_and_an_interrupted_bench_resumes(bench, monkeypatch):
    root, first = bench
    victim = root / "out" / "b" / "weighted" / "seed-1"
    (victim / "metrics.json").unlink()  # as if killed before the run finished
    resumed = _bench(root)
    assert resumed["ran"] == 1 and resumed["reused"] == 7

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run or validation was recomputed")

    monkeypatch.setattr("xdistill.pipeline.distill.distill", refuse)
    monkeypatch.setattr("xdistill.bench.validate.validate_selection", refuse)
    again = _bench(root)
    assert again["ran"] == 0 and again["reused"] == 8
    assert again["runs"] == resumed["runs"] and again["validation"] == first["validation"]


def test_bad_arguments_are_all_reported_before_any_work(tmp_path):
    suite = [BenchTarget(tmp_path / "missing", tmp_path / "nozoo.yaml")]
    with pytest.raises(XDistillError) as info:
        run_bench(suite, BenchConfig(seeds=0, methods=["weigthed", "finetune"], out=str(tmp_path / "out")),
                  Runtime(log=None), progress=False)
    message = str(info.value)
    for part in ("'seeds' must be an int >= 1", "Did you mean 'weighted'", "holds no task.yaml", "does not exist",
                 "'finetune' needs a generic pretrained student"):
        assert part in message
    assert not (tmp_path / "out").exists()


def test_cli_bench_user_errors_exit_2_before_any_work(tmp_path, capsys):
    from xdistill.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["bench", "--methods", "supervised,weigthed", "--seeds", "0", "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Did you mean 'weighted'" in err and "'seeds' must be an int >= 1" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
