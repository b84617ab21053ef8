"""The generative demo world: its split, its export through the CLI (on a prebuilt tiny world in a home of its
own; the real teacher is never trained in tests) and the resumable flow-matching training it uses."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from xdistill.cli.main import main
from xdistill.demo.gen_world import RECIPE_VERSION, stratified_split
from xdistill.kinds.generation.train_flow import train_velocity_network
from xdistill.students import build_student
from xdistill.teachers.zoo import load_zoo


def test_stratified_split_is_seeded_and_per_class():
    y = np.repeat(np.arange(3), 10)
    train, test = stratified_split(y, test_share=0.2, seed=0)
    assert len(test) == 6 and np.bincount(y[test]).tolist() == [2, 2, 2]
    assert not set(train) & set(test) and len(train) + len(test) == 30
    again = stratified_split(y, test_share=0.2, seed=0)
    assert np.array_equal(again[1], test)


def test_demo_export_writes_teacher_zoo_and_tasks(gen_world, tmp_path, capsys):
    home = tmp_path / "home"
    root = home / f"gen-world-v{RECIPE_VERSION}"
    shutil.copytree(gen_world.root, root)
    (root / "tasks" / "digits8").rename(root / "tasks" / "digits16")  # the world's task name
    (root / "world.json").write_text(json.dumps({"recipe": RECIPE_VERSION}))
    with pytest.raises(SystemExit) as code:
        main(["demo", "--world", "gen", "--home", str(home), "--export", str(tmp_path / "out")])
    assert code.value.code == 0
    out = tmp_path / "out"
    assert (out / "tasks" / "digits16" / "task.yaml").is_file() and (out / "teacher" / "model.safetensors").is_file()
    teacher = load_zoo(out / "zoo.yaml").teachers()[0]
    teacher.setup()
    assert teacher.denoiser.num_classes == 10


def test_unknown_world_is_a_user_error(capsys):
    with pytest.raises(SystemExit) as code:
        main(["demo", "--world", "gan"])
    assert code.value.code == 2 and "images, lm or gen" in capsys.readouterr().err


def test_flow_training_resumes_bitwise(tmp_path, monkeypatch):
    import xdistill.kinds.generation.train_flow as train_flow

    x0, y = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 10
    knobs = {"width": 8, "mults": (1, 2), "attention": False}

    def trained(checkpoint):
        torch.manual_seed(0)
        network = build_student("unet", (1, 8, 8), 10, **knobs)
        return train_velocity_network(network, x0, y, 6, batch_size=4, checkpoint=checkpoint, checkpoint_every=3)

    whole = trained(None)
    real_save = train_flow.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # the build is interrupted right after its step-3 checkpoint

    monkeypatch.setattr(train_flow, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        trained(tmp_path / "ckpt.safetensors")
    monkeypatch.setattr(train_flow, "save_checkpoint", real_save)
    resumed = trained(tmp_path / "ckpt.safetensors")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
