"""Targets where the demo zoo does not fit (``xdistill bench --suite robust``).

The demo targets were built so that some teacher is close to each of them.
These three are built from the same images so that none is, or so that the
labels alone nearly suffice; a teacher method must then match its baselines:

* ``sk-digits-over-4``: scikit-learn's digits relabelled "4 or less" / "more
  than 4", 10 labels a class. No teacher's label space expresses the classes;
  a bridge head can still find them in the teachers' features.
* ``mnist-noise-50``: the ``mnist-noise`` target with 50 labels a class, where
  labels and FixMatch close much of the gap to the teachers.
* ``mnist-noise-useless``: the ``mnist-noise`` target (10 labels a class) with a
  zoo of the demo teachers made useless on purpose. Permuting a teacher's
  classes alone does not hurt it here: the bridge fits a head on the teacher's
  features, which a permutation leaves unchanged, and would learn the
  permutation from the logits. So every scrambled teacher first replaces its
  input by a pseudo-random image hashed from it (sin of a fixed random
  projection, scaled far past its period: nearby images map to unrelated
  noise), then permutes its classes by a fixed random permutation. Its
  outputs are a deterministic function of the image that carries no class
  information, as confident as the original teacher's.

The tasks and the scrambled zoo live in ``<demo world>/robust/`` and are built
once, after the demo world itself.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from xdistill.data import Task, save_task, task_from_arrays
from xdistill.demo import domains, nets
from xdistill.demo.world import DemoWorld
from xdistill.io import atomic_write, atomic_write_text

ROBUST_FOLDER = "robust"
USELESS_ZOO = "zoo-useless.yaml"
SCRAMBLE_SEED = 13  # seeds the hash projection and the class permutations of the scrambled teachers
OVER = 4  # sk-digits-over-4 splits the digits into 0..OVER and OVER+1..9


def over_four_task(labeled_per_class: int = 10, test_size: int = 500, seed: int = 0) -> Task:
    """scikit-learn's digits, labelled by whether the digit is greater than 4 (a class no teacher has)."""
    images, digits = domains.load_sklearn_digits()
    x = domains.to_uint8(domains.resize(images / 16.0, 28, "bilinear"))
    y = (digits > OVER).astype(np.int64)
    labeled, unlabeled, test = domains.few_label_split(y, labeled_per_class, test_size, seed)
    return task_from_arrays(
        "sk-digits-over-4", [f"0-{OVER}", f"{OVER + 1}-9"], (x[labeled], y[labeled]), x[unlabeled],
        (x[test], y[test]), "image", f"scikit-learn digits upsampled to 28x28, labelled digit > {OVER}",
    )


def many_labels_task(labeled_per_class: int = 50, seed: int = 0) -> Task:
    """The ``mnist-noise`` target with ``labeled_per_class`` labels a class."""
    task = domains.mnist_noise_task(labeled_per_class=labeled_per_class, seed=seed)
    return dataclasses.replace(task, name=f"mnist-noise-{labeled_per_class}")


class ScrambledTeacher(nn.Module):
    """A demo teacher made useless: forward(x [N, 1, 28, 28], preprocessed) -> (features [N, D], logits [N, C])
    computed on a pseudo-random image hashed from x, with the classes permuted."""

    def __init__(self, teacher: nn.Module, permutation: np.ndarray, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.teacher = teacher
        self.register_buffer("projection", torch.randn(28 * 28, 28 * 28, generator=generator))
        self.register_buffer("permutation", torch.as_tensor(permutation, dtype=torch.long))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # The fractional part of sin(.) * 43758.5453 is the classic shader hash: uniform-looking in [0, 1).
        hashed = torch.frac(torch.sin(x.flatten(1) @ self.projection) * 43758.5453).abs()
        noise = (hashed.reshape(-1, 1, 28, 28) - nets.INPUT_MEAN) / nets.INPUT_STD
        features, logits = self.teacher(noise)
        return features, logits[:, self.permutation]


def write_useless_zoo(world: DemoWorld, root: Path) -> Path:
    """The scrambled twin of every demo teacher and their zoo file ``root / USELESS_ZOO``."""
    zoo = yaml.safe_load(world.zoo_path.read_text())
    rng = np.random.default_rng(SCRAMBLE_SEED)
    entries = []
    for i, entry in enumerate(zoo["teachers"]):
        name = f"{entry['name']}-scrambled"
        path = root / "teachers" / f"{name}.pt"
        permutation = rng.permutation(len(entry["labels"]))
        if not path.is_file():
            inner = torch.jit.load(str(world.root / entry["path"]), map_location="cpu").eval()
            model = ScrambledTeacher(inner, permutation, SCRAMBLE_SEED + i).eval()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                traced = torch.jit.trace(model, nets.preprocess(np.zeros((2, 28, 28), np.uint8)))
            atomic_write(path, lambda temporary, traced=traced: torch.jit.save(traced, str(temporary)))
        entries.append({**entry, "name": name, "path": f"teachers/{name}.pt",
                        "domain": f"{entry['domain']}, input hashed to noise, classes permuted"})
    zoo_path = root / USELESS_ZOO
    text = yaml.safe_dump({"teachers": entries}, sort_keys=False, default_flow_style=None)
    if not zoo_path.is_file() or zoo_path.read_text() != text:
        atomic_write_text(zoo_path, text)
    return zoo_path


def build_robust(world: DemoWorld, log: Callable[[str], None] = print) -> dict[str, tuple[Path, Path]]:
    """Each robust target's (task folder, zoo file), built under ``world.root / ROBUST_FOLDER`` when missing."""
    root = world.root / ROBUST_FOLDER
    makers = {"sk-digits-over-4": over_four_task, "mnist-noise-50": many_labels_task,
              "mnist-noise-useless": domains.mnist_noise_task}
    folders = {}
    for name, make in makers.items():
        folder = root / "tasks" / name
        if not (folder / "task.yaml").is_file():
            task = make()
            # task.yaml is written last, so a folder holding it is complete.
            save_task(dataclasses.replace(task, name=name), folder)
            log(f"robust targets: task {name}: " + ", ".join(f"{len(s)} {k}" for k, s in task.splits.items()))
        folders[name] = folder
    useless = write_useless_zoo(world, root)
    return {name: (folder, useless if name == "mnist-noise-useless" else world.zoo_path)
            for name, folder in folders.items()}
