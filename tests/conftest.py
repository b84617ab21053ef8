"""Shared fixtures: a tiny image task and a tiny zoo of TorchScript teachers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

os.environ.setdefault("XDISTILL_HOME", str(Path(__file__).parent / ".xdistill-home-unused"))
torch.set_num_threads(1)


class TinyNet(nn.Module):
    """A teacher for tests: forward(x [N,1,8,8]) -> (features [N,D], logits [N,C])."""

    def __init__(self, classes: int = 3, dim: int = 6, as_dict: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, dim), nn.Tanh())
        self.head = nn.Linear(dim, classes)
        self.as_dict = as_dict

    def forward(self, x: torch.Tensor):
        f = self.body(x)
        if self.as_dict:
            return {"features": f, "logits": self.head(f)}
        return f, self.head(f)


def make_arrays(seed: int = 0, n_lab: int = 12, n_unl: int = 30, n_test: int = 9, classes: int = 3, size: int = 8):
    rng = np.random.default_rng(seed)
    def imgs(n):
        return rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    y_lab = np.arange(n_lab) % classes
    y_test = np.arange(n_test) % classes
    return (imgs(n_lab), y_lab), imgs(n_unl), (imgs(n_test), y_test)


def write_task(folder: Path, seed: int = 0, **kw) -> Path:
    from xdistill.data import save_task, task_from_arrays

    labeled, unlabeled, test = make_arrays(seed, **kw)
    classes = kw.get("classes", 3)
    task = task_from_arrays("tiny", [f"c{i}" for i in range(classes)], labeled, unlabeled, test)
    save_task(task, folder)
    return folder


def write_zoo(folder: Path, n_teachers: int = 2, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n_teachers):
        torch.manual_seed(seed + i)
        net = TinyNet(classes=3 + i, dim=5 + i, as_dict=bool(i % 2)).eval()
        path = folder / f"t{i}.pt"
        torch.jit.save(torch.jit.trace(net, torch.zeros(2, 1, 8, 8), strict=False), str(path))
        entries.append({
            "name": f"t{i}", "kind": "torchscript", "path": path.name,
            "input": {"size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.5]},
            "labels": [f"l{j}" for j in range(3 + i)], "domain": f"domain {i}", "architecture": "mlp",
        })
    zoo = folder / "zoo.yaml"
    zoo.write_text(yaml.safe_dump({"teachers": entries}, sort_keys=False))
    return zoo


@pytest.fixture
def tiny_task(tmp_path: Path) -> Path:
    return write_task(tmp_path / "task")


@pytest.fixture
def tiny_zoo(tmp_path: Path) -> Path:
    return write_zoo(tmp_path / "zoo")


def run_cli(*args: str) -> int:
    """Run the real CLI in this process and return its exit status."""
    from xdistill.cli.main import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


class Interrupt(Exception):
    """Raised in place of a crash, right after a chosen checkpoint was written."""


def interrupt_after_checkpoint(monkeypatch: pytest.MonkeyPatch, n: int):
    """Make the training loop raise Interrupt right after writing its n-th checkpoint; returns a
    function that restores the loop's own checkpoint writer."""
    from xdistill.train import loop

    original = loop.save_checkpoint
    calls = {"n": 0}

    def dying_save(*args, **kwargs):
        original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupt()

    monkeypatch.setattr(loop, "save_checkpoint", dying_save)
    return lambda: monkeypatch.setattr(loop, "save_checkpoint", original)
