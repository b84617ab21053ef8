"""A task kind registered in one file (toy_regression.py) runs through the real CLI's cache, rank,
distill and eval, with no change to the library."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.kinds import toy_regression
from xdistill.cli.main import main
from xdistill.kinds import KINDS


def run(*argv: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 0, argv


@pytest.fixture
def toy(tmp_path):
    rng = np.random.default_rng(0)
    w = np.array([1.5, -2.0, 0.5])
    task = tmp_path / "task"
    task.mkdir()
    for name, n in (("train", 40), ("test", 30)):
        x = rng.standard_normal((n, 3)).astype(np.float32)
        np.savez(task / f"{name}.npz", x=x, y=(x @ w).astype(np.float32))
    (task / "task.yaml").write_text(yaml.safe_dump({"kind": toy_regression.KIND, "name": "toy",
                                                    "splits": {"train": "train.npz", "test": "test.npz"}}))
    zoo = tmp_path / "zoo.yaml"
    teachers = [{"name": "exact", "kind": "toy-linear", "modality": "features", "weights": w.tolist()},
                {"name": "wrong", "kind": "toy-linear", "modality": "features", "weights": [0.0, 1.0, 0.0]}]
    zoo.write_text(yaml.safe_dump({"teachers": teachers}))
    return task, zoo, tmp_path / "cache"


def test_toy_kind_is_registered_beside_classification():
    assert {"classification", toy_regression.KIND} <= set(KINDS.names())


def test_cache_rank_distill_eval_on_a_kind_the_library_does_not_know(toy, tmp_path):
    task, zoo, cache = toy
    run("cache", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache))
    manifest = json.loads((cache / "manifest.json").read_text())
    dims = {entry["teacher"]: entry["dims"] for entry in manifest["entries"].values()}
    assert dims == {"exact": {"prediction": []}, "wrong": {"prediction": []}}  # the named tensor, stored as it is

    run("rank", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache), "--out", str(tmp_path / "rank.json"))
    ranking = json.loads((tmp_path / "rank.json").read_text())
    assert [t["name"] for t in ranking["teachers"]] == ["exact", "wrong"] and ranking["metric"] == "neg_mse"
    assert ranking["teachers"][0]["scores"]["neg_mse"] == pytest.approx(0.0, abs=1e-10)

    common = ["--task", str(task), "--zoo", str(zoo), "--cache", str(cache), "epochs=60", "lr=0.1", "progress=false"]
    run("distill", *common, "--method", "nearest", "--out", str(tmp_path / "nearest"))
    run("distill", *common, "--method", "supervised", "--out", str(tmp_path / "supervised"))
    distilled = json.loads((tmp_path / "nearest" / "metrics.json").read_text())
    assert distilled["kind"] == toy_regression.KIND and distilled["test"]["mse"] < 0.05

    run("eval", str(tmp_path / "nearest"), "--json", str(tmp_path / "eval.json"))
    scored = json.loads((tmp_path / "eval.json").read_text())
    assert scored["mse"] == pytest.approx(distilled["test"]["mse"], rel=1e-5) and scored["n"] == 30


def test_a_method_the_kind_lacks_is_a_user_error(toy, tmp_path, capsys):
    task, zoo, cache = toy
    with pytest.raises(SystemExit) as info:
        main(["distill", "--task", str(task), "--zoo", str(zoo), "--method", "weighted", "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    assert "Unknown toy-regression method 'weighted'" in capsys.readouterr().err
