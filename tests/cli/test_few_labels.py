"""End-to-end: every method through the real CLI with one and two labeled images per class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors.torch import save_file

from tests.conftest import run_cli, write_task, write_zoo
from xdistill.kinds.classification.methods import METHODS
from xdistill.students import build_student

CLASSES = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("few-labels")
    init = root / "generic.safetensors"
    save_file({k: v.contiguous() for k, v in build_student("cnn", (1, 8, 8), CLASSES).state_dict().items()}, init)
    return {
        "zoo": write_zoo(root / "zoo"),
        "cache": root / "cache",
        "init": init,
        1: write_task(root / "one-per-class", n_lab=CLASSES, n_unl=12, n_test=6),
        2: write_task(root / "two-per-class", n_lab=2 * CLASSES, n_unl=12, n_test=6),
    }


@pytest.mark.parametrize("per_class", [1, 2])
@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_distills_with_few_labels(world, method, per_class, tmp_path):
    out = tmp_path / "run"
    extra = [f"init={world['init']}"] if METHODS.get(method).init == "required" else []
    code = run_cli("distill", "--task", str(world[per_class]), "--zoo", str(world["zoo"]), "--cache", str(world["cache"]),
                   "--method", method, "--out", str(out), "epochs=1", "batch_size=4", "progress=false", *extra)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    if not METHODS.get(method).teachers:
        assert metrics["ranking"] is None
        return
    ranking = metrics["ranking"]
    assert ranking["metric_used"] == "gbc"
    scores = {t["name"]: t["scores"] for t in ranking["teachers"]}
    for teacher in scores.values():
        held_out_probes = [teacher["knn_loo_accuracy"], teacher["linear_probe_accuracy"]]
        assert (held_out_probes == [None, None]) == (per_class == 1)
    estimates = {t["reliability_estimate"] for t in metrics["teachers"]["teachers"].values()}
    if per_class == 1:
        assert estimates == {"none"} and metrics["teachers"]["reliability"] is None
        assert ranking["metric_note"].startswith("every class has one labeled sample: gbc")
    else:
        assert estimates == {"2-fold"} and 0.0 <= metrics["teachers"]["reliability"] <= 1.0
        assert ranking["metric_note"] == ""


def test_an_explicit_metric_that_cannot_run_is_a_one_line_error(world, tmp_path, capsys):
    task, zoo, cache = str(world[1]), str(world["zoo"]), str(world["cache"])
    code = run_cli("distill", "--task", task, "--zoo", zoo, "--cache", cache, "--method", "weighted",
                   "--out", str(tmp_path / "run"), "epochs=1", "progress=false", "metric=knn_loo_accuracy")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'knn_loo_accuracy' cannot run on this task: it needs a class with at least 2 labeled samples" in err
    assert "Metrics that can: gbc, hscore" in err
    assert run_cli("rank", "--task", task, "--zoo", zoo, "--cache", cache, "--metric", "linear_probe_accuracy") == 2
    assert "'linear_probe_accuracy' cannot run on this task" in capsys.readouterr().err


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(np.clip(value + rng.integers(-20, 20, (8, 8)), 0, 255).astype(np.uint8)).save(path)


def test_image_folder_task_with_one_png_per_class(world, tmp_path, capsys):
    root = tmp_path / "task"
    classes = ["cat", "dog", "fox"]
    for i, name in enumerate(classes):
        _png(root / "labeled" / name / "only.png", 60 + 70 * i)
        for j in range(2):
            _png(root / "test" / name / f"{j}.png", 60 + 70 * i + j)
    for j in range(9):
        _png(root / "unlabeled" / f"{j}.png", 60 + 70 * (j % 3) + j)
    (root / "task.yaml").write_text(yaml.safe_dump({
        "name": "pets", "classes": classes, "input": "image",
        "splits": {"labeled": "labeled", "unlabeled": "unlabeled", "test": "test"},
    }))
    out = tmp_path / "run"
    code = run_cli("distill", "--task", str(root), "--zoo", str(world["zoo"]), "--cache", str(tmp_path / "cache"),
                   "--method", "weighted", "--out", str(out), "epochs=1", "progress=false")
    assert code == 0
    log = capsys.readouterr().out
    ranked = [line for line in log.splitlines() if line.startswith("ranked ")]
    assert len(ranked) == 1 and ranked[0].startswith("ranked 2 teachers by gbc: top is t")
    assert "(every class has one labeled sample: gbc gives such a class" in ranked[0]
    assert "held-out labeled accuracy unknown (one label per class)" in log
    ranking = json.loads((out / "metrics.json").read_text())["ranking"]
    assert ranking["metric_used"] == "gbc" and ranking["metric_note"] in ranked[0]
    assert any(note.startswith("every teacher: knn_loo_accuracy, linear_probe_accuracy not applicable")
               for note in ranking["notes"])
