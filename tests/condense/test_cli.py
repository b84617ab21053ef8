"""condense, eval of a condensed folder and distill labeled_from= through the real CLI, and the errors."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import run_cli, write_task
from xdistill.condense.store import read_condensed

TINY = ["iterations=2", "real_batch=4", "embedder_width=8", "progress=false"]
RECIPE = ["steps=3", "width=8", "seeds=2", "progress=false"]


def test_condense_eval_and_distill_from_the_condensed_set(tiny_task, tiny_zoo, tmp_path, capsys):
    out = tmp_path / "dm"
    assert run_cli("condense", "--task", str(tiny_task), "--ipc", "2", "--method", "dm", "--out", str(out),
                   "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "cache"), "labels=relabel", *TINY) == 0
    record = json.loads((out / "condense.json").read_text())
    assert record["method"] == "dm" and record["labels"] == "relabel" and record["iterations"] == 2
    assert record["seed"] == 0 and record["seconds"] > 0 and record["settings"]["ipc"] == 2
    condensed = read_condensed(out)
    assert condensed.soft.shape == (6, 3)

    assert run_cli("eval", str(out), *RECIPE, "--json", str(tmp_path / "eval.json")) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    for key in ("condensed_hard", "condensed_soft", "random_real_hard", "full_data"):
        assert len(report[key]["accuracy"]) == 2 and 0 <= report[key]["accuracy_mean"] <= 1
    assert set(report["share_of_gap"]) == {"condensed_hard", "condensed_soft"}
    assert (out / "eval.json").is_file()

    run = tmp_path / "run"
    assert run_cli("distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(run), "--epochs", "1",
                   f"labeled_from={out}", "progress=false") == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0 and "labeled_from" in (run / "config.yaml").read_text()

    from xdistill.kinds import load_task
    from xdistill.pipeline.distill import condensed_task

    task = condensed_task(load_task(tiny_task), out)  # what that run trained on: the condensed set alone
    assert len(task.labeled) == len(task.unlabeled) == 6 and len(task.test) == 9
    np.testing.assert_array_equal(task.labeled.soft, condensed.soft)
    np.testing.assert_array_equal(task.unlabeled.x, condensed.x)


def test_distill_refuses_a_folder_that_is_not_condensed(tiny_task, tmp_path, capsys):
    code = run_cli("distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(tmp_path / "r"),
                   f"labeled_from={tmp_path}")
    assert code == 2
    assert "'labeled_from' must be a condensed folder" in capsys.readouterr().err


def test_unknown_method_names_close_matches(tiny_task, tmp_path, capsys):
    assert run_cli("condense", "--task", str(tiny_task), "--method", "dmm", "--out", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err
    assert "Unknown condense method 'dmm'" in err and "'dm'" in err and "datadam" in err


def test_ipc_larger_than_a_class_allows_without_the_pool(tiny_task, tmp_path, capsys):
    assert run_cli("condense", "--task", str(tiny_task), "--ipc", "5", "--method", "random", "--out",
                   str(tmp_path / "x")) == 2
    err = capsys.readouterr().err
    assert "ipc=5 needs 5 real images of every class" in err and "'c0' has 4" in err and "--zoo" in err


def test_soft_labels_without_a_zoo(tiny_task, tmp_path, capsys):
    assert run_cli("condense", "--task", str(tiny_task), "--method", "committee", "--out", str(tmp_path / "x")) == 2
    assert "pass --zoo FILE" in capsys.readouterr().err


def test_a_task_of_feature_vectors_cannot_be_condensed(tmp_path, capsys):
    from xdistill.data import save_task, task_from_arrays

    rng = np.random.default_rng(0)
    task = task_from_arrays("vectors", ["a", "b"], (rng.normal(size=(6, 4)), np.arange(6) % 2), rng.normal(size=(4, 4)),
                            (rng.normal(size=(4, 4)), np.arange(4) % 2), "features")
    save_task(task, tmp_path / "t")
    assert run_cli("condense", "--task", str(tmp_path / "t"), "--ipc", "1", "--out", str(tmp_path / "x")) == 2
    assert "needs an image classification task" in capsys.readouterr().err


def test_pseudo_labeled_pool_lets_ipc_exceed_the_labels(tmp_path, tiny_zoo, capsys, monkeypatch):
    """On a few-label task the pool takes unlabeled images with the teachers' pseudo-labels when their held-out
    accuracy allows (here the bar is lowered, the tiny teachers being random), so ipc can exceed the labels."""
    task = write_task(tmp_path / "task", n_lab=6, n_unl=60)  # 2 labels a class
    out = tmp_path / "x"
    assert run_cli("condense", "--task", str(task), "--ipc", "3", "--method", "random", "--out", str(out),
                   "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "cache"), "pool=pseudo",
                   "pseudo_min_accuracy=0", "pseudo_confidence=0", *TINY) == 0
    record = json.loads((out / "condense.json").read_text())
    assert record["pool"]["pseudo_labeled"] == 60
    assert read_condensed(out).x.shape == (9, 8, 8)


def test_pseudo_pool_refused_when_the_teachers_are_not_reliable(tmp_path, tiny_zoo, capsys):
    task = write_task(tmp_path / "task", n_lab=6, n_unl=20)
    assert run_cli("condense", "--task", str(task), "--ipc", "3", "--method", "random", "--out", str(tmp_path / "x"),
                   "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "cache"), "pool=pseudo",
                   "pseudo_min_accuracy=1.0", *TINY) == 2
    assert "pool=pseudo needs teachers whose pseudo-labels can be trusted" in capsys.readouterr().err
