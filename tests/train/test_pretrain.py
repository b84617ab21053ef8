"""``xdistill pretrain`` makes the generic student that ``finetune`` (and ``init=``) start from,
from a user's own labeled task folder or image folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from tests.conftest import write_task
from xdistill.cli.main import main


def run(*argv: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 0, argv


def fail(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


def test_pretrain_on_a_task_then_finetune_from_it(tmp_path):
    source, target = write_task(tmp_path / "source", seed=1), write_task(tmp_path / "target", seed=2)
    generic = tmp_path / "generic.safetensors"
    run("pretrain", "--task", str(source), "--out", str(generic), "--epochs", "2", "progress=false")
    with safe_open(str(generic), "pt") as f:
        meta = f.metadata()
        assert meta["student"] == "cnn" and json.loads(meta["input_shape"]) == [1, 8, 8]
        assert any(k.startswith("head.") for k in f.keys())
    run("distill", "--task", str(target), "--method", "finetune", f"init={generic}", "--out", str(tmp_path / "ft"),
        "epochs=1", "progress=false", "batch_size=4")
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["method"] == "finetune" and 0 <= metrics["test"]["accuracy"] <= 1


def test_pretrain_from_an_image_folder_with_one_sub_folder_per_class(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "fox"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    out = tmp_path / "generic.safetensors"
    run("pretrain", "--images", str(tmp_path / "images"), "--student", "mlp", "--out", str(out), "--epochs", "1",
        "progress=false")
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["student"] == "mlp"
        assert f.get_tensor([k for k in f.keys() if k.startswith("head.") and k.endswith("weight")][0]).shape[0] == 3


def test_finetune_without_init_names_the_pretrain_command(tmp_path, capsys):
    err = fail(capsys, "distill", "--task", str(write_task(tmp_path / "t")), "--method", "finetune",
               "--out", str(tmp_path / "o"))
    assert "xdistill pretrain" in err and "init=" in err


def test_pretrain_refuses_bad_arguments_all_at_once(tmp_path, capsys):
    err = fail(capsys, "pretrain", "--task", str(tmp_path / "t"), "--images", str(tmp_path / "i"),
               "--out", str(tmp_path / "g.pt"), "epochs=0")
    for part in ("exactly one of --task", "must name a .safetensors file", "'epochs' must be >= 1"):
        assert part in err
    assert not (tmp_path / "g.pt").exists()
