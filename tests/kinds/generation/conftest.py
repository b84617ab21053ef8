"""A tiny generative world under a temporary home: the bundled digits at 8 x 8 (30 train and 10 test images per
class), a tiny class-conditional U-Net teacher trained for a few flow-matching steps, and a zoo naming it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from xdistill.demo.gen_world import digits, write_generation_task
from xdistill.kinds.generation.flow import to_model_space
from xdistill.kinds.generation.train_flow import train_velocity_network
from xdistill.models.denoiser import save_denoiser
from xdistill.students import build_student

TINY_KNOBS = {"width": 8, "mults": (1, 2), "blocks": 1, "attention": False}
CLASSES = [str(d) for d in range(10)]


@dataclass
class TinyGenWorld:
    root: Path
    task: Path
    zoo: Path
    teacher: Path


def tiny_digits(per_class_train: int = 30, per_class_test: int = 10):
    x, y = digits(size=8)
    train, test = [], []
    for label in range(10):
        members = np.flatnonzero(y == label)
        train.extend(members[:per_class_train])
        test.extend(members[per_class_train:per_class_train + per_class_test])
    return (x[train], y[train]), (x[test], y[test])


@pytest.fixture(scope="session")
def gen_world(tmp_path_factory) -> TinyGenWorld:
    root = tmp_path_factory.mktemp("gen-world")
    train, test = tiny_digits()
    task = write_generation_task(root / "tasks" / "digits8", "digits8", CLASSES, train, test)
    torch.manual_seed(0)
    network = build_student("unet", (1, 8, 8), 10, **TINY_KNOBS)
    teacher = train_velocity_network(network, to_model_space(train[0]), torch.as_tensor(train[1]), iterations=20,
                                     batch_size=32, lr=2e-3)
    save_denoiser(root / "teacher", teacher, CLASSES, {"guidance": 2.0, "steps": 8})
    zoo = root / "zoo.yaml"
    zoo.write_text(yaml.safe_dump({"teachers": [{"name": "tiny-flow", "kind": "diffusion", "path": "teacher"}]}))
    return TinyGenWorld(root, task, zoo, root / "teacher")


@pytest.fixture(autouse=True)
def own_home(tmp_path_factory, monkeypatch):
    """Every test's classifier cache in one temporary home (the tiny task's classifier trains once)."""
    monkeypatch.setenv("XDISTILL_HOME", str(tmp_path_factory.getbasetemp() / "gen-home"))
