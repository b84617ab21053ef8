"""Honest evaluation of a condensed set: fresh students trained on it alone, with one fixed recipe.

The recipe (:class:`EvalConfig`, documented in ``docs/condense.md``): a registered student (``convnet3``,
the literature's ConvNet-3: width 128, instance norm, average pooling), SGD with momentum 0.9, learning
rate 0.01 with cosine decay, weight decay 5e-4, ``steps`` steps of batches of at most ``batch_size``
images, differentiable augmentation of every batch (one random transformation per image, as the papers
evaluate), over ``seeds`` seeds. The same recipe trains, for comparison, on random real images at the
same images per class (a fresh draw per seed) and on the full labeled split. Hard and soft labels are
trained and reported apart; the gain over random real images is also given as a share of the gap
between random real images and the full data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from xdistill.condense.augment import sample_params, siamese_augment
from xdistill.condense.embedders import normalise
from xdistill.config import device_problems
from xdistill.data.task import Task
from xdistill.data.tensors import images_to_tensor
from xdistill.progress import progress_bar
from xdistill.students import build_student

TEST_BATCH = 500


@dataclass
class EvalConfig:
    """``xdistill eval CONDENSED_DIR``: the fixed recipe every condensed set is scored with."""

    student: str = "convnet3"  # a registered student family that reads images
    width: int = 128  # the student's width knob (0: the family's default)
    seeds: int = 3  # students per label kind (seeds 0..seeds-1); 1..10
    steps: int = 100  # SGD steps per student (the papers train 1,000 epochs; this fits a CPU); 1..100000
    batch_size: int = 64  # images per step (the whole set when smaller; the papers' 256); 1..4096
    lr: float = 0.01  # SGD learning rate (momentum 0.9, cosine decay to 0)
    weight_decay: float = 5e-4
    augment: bool = True  # differentiable augmentation of every batch
    baselines: bool = True  # also train on random real images (same ipc) and on the full labeled split
    device: str = "cpu"
    threads: int = 0  # torch CPU threads; 0 = torch's default
    progress: bool = True

    def problems(self) -> list[str]:
        problems = []
        for key, low, high in (("seeds", 1, 10), ("steps", 1, 100_000), ("batch_size", 1, 4096), ("width", 0, 1024),
                               ("threads", 0, 1024)):
            if not low <= getattr(self, key) <= high:
                problems.append(f"'{key}' must lie in {low}..{high}. Got {getattr(self, key)}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"'lr' must be a finite number > 0. Got {self.lr}.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"'weight_decay' must be a finite number >= 0. Got {self.weight_decay}.")
        return problems + device_problems(self.device)


def train_and_test(x: torch.Tensor, y: np.ndarray, soft: np.ndarray | None, task: Task, config: EvalConfig,
                   seed: int, description: str = "") -> dict:
    """Train a fresh student on images x [N, C, H, W] in [0, 1] with hard labels y [N] (or soft labels [N, C])
    with the recipe, and score it on the task's test split: {'accuracy', 'nll', 'seconds'}."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    knobs = {"width": config.width} if config.width else {}
    student = build_student(config.student, tuple(task.input_shape), task.num_classes, **knobs).to(config.device)
    optimiser = torch.optim.SGD(student.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps)))
    batch = min(config.batch_size, len(x))
    rng = np.random.default_rng([seed, 17])
    generator = torch.Generator().manual_seed(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(-(-config.steps * batch // len(x)))])
    targets = torch.as_tensor(y, dtype=torch.long) if soft is None else torch.as_tensor(soft, dtype=torch.float32)
    bar = progress_bar(config.steps, desc=description or "eval", unit="step", disable=not config.progress)
    student.train()
    for step in range(config.steps):
        index = torch.as_tensor(order[step * batch:(step + 1) * batch])
        images = x[index]
        if config.augment:
            images = siamese_augment(images, sample_params(len(images), generator), torch.arange(len(images)))
        logits = student(normalise(images).to(config.device))
        wanted = targets[index].to(config.device)
        loss = F.cross_entropy(logits, wanted) if soft is None else -(wanted * F.log_softmax(logits, 1)).sum(1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        bar.update(1)
    bar.close()
    return {**test_scores(student, task, config.device), "seconds": time.perf_counter() - started}


def test_scores(student: torch.nn.Module, task: Task, device: str) -> dict:
    """Accuracy and NLL of a student on the task's test split."""
    student.eval()
    correct, nll = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(task.test), TEST_BATCH):
            rows = np.arange(start, min(start + TEST_BATCH, len(task.test)))
            logits = student(normalise(images_to_tensor(task.test.x[rows])).to(device)).float().cpu()
            labels = torch.as_tensor(task.test.y[rows])
            correct += int((logits.argmax(1) == labels).sum())
            nll += float(F.cross_entropy(logits, labels, reduction="sum"))
    return {"accuracy": correct / len(task.test), "nll": nll / len(task.test)}


def random_real(task: Task, ipc: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``ipc`` random labeled images of every class (at most what the class has), drawn with ``seed``."""
    rng = np.random.default_rng([seed, 23])
    y = task.labeled.y
    rows = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:ipc] for c in range(task.num_classes)])
    return images_to_tensor(task.labeled.x[np.sort(rows)]), y[np.sort(rows)]


def full_data(task: Task) -> tuple[torch.Tensor, np.ndarray]:
    return images_to_tensor(task.labeled.x[np.arange(len(task.labeled))]), task.labeled.y


def summarise(runs: list[dict]) -> dict:
    accuracies = [r["accuracy"] for r in runs]
    spread = float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0  # sample std over seeds
    return {"accuracy_mean": float(np.mean(accuracies)), "accuracy_std": spread,
            "accuracy": accuracies, "seconds": float(sum(r["seconds"] for r in runs))}


def seeds_of(config: EvalConfig) -> list[int]:
    return list(range(config.seeds))


def evaluate_set(x: torch.Tensor, y: np.ndarray, soft: np.ndarray | None, task: Task, config: EvalConfig,
                 name: str) -> dict:
    """Every seed's student on one set; a summary with the per-seed accuracies."""
    return summarise([train_and_test(x, y, soft, task, config, seed, f"{name} seed {seed}") for seed in seeds_of(config)])


def random_real_results(task: Task, ipc: int, config: EvalConfig) -> dict:
    """Random real images at ``ipc`` with hard labels, a new draw per seed, with the recipe."""
    runs = []
    for seed in seeds_of(config):
        x, y = random_real(task, ipc, seed)
        runs.append(train_and_test(x, y, None, task, config, seed, f"random real ipc {ipc} seed {seed}"))
    return summarise(runs)


def full_data_results(task: Task, config: EvalConfig) -> dict:
    """The full labeled split with the recipe."""
    x, y = full_data(task)
    return evaluate_set(x, y, None, task, config, "full data")


def baseline_results(task: Task, ipc: int, config: EvalConfig) -> dict:
    """Random real images at ``ipc`` (hard labels; a new draw per seed) and the full labeled split, same recipe."""
    return {"random_real_hard": random_real_results(task, ipc, config), "full_data": full_data_results(task, config)}


def share_of_gap(condensed: float, random: float, full: float) -> float | None:
    """(condensed - random real) / (full data - random real): 0 = no better than random, 1 = as good as all data."""
    gap = full - random
    return None if abs(gap) < 1e-12 else (condensed - random) / gap


def condensed_results(x: torch.Tensor, y: np.ndarray, soft: np.ndarray | None, task: Task, config: EvalConfig,
                      baselines: dict | None, log: Callable[[str], None] | None = None) -> dict:
    """The condensed set's students with hard labels and (when it has them) soft labels, beside the baselines."""
    results = {"condensed_hard": evaluate_set(x, y, None, task, config, "condensed, hard labels")}
    if soft is not None:
        results["condensed_soft"] = evaluate_set(x, y, soft, task, config, "condensed, soft labels")
    if baselines:
        results.update(baselines)
        random, full = baselines["random_real_hard"]["accuracy_mean"], baselines["full_data"]["accuracy_mean"]
        results["share_of_gap"] = {key: share_of_gap(results[key]["accuracy_mean"], random, full)
                                   for key in ("condensed_hard", "condensed_soft") if key in results}
    if log is not None:
        for key, value in results.items():
            if isinstance(value, dict) and "accuracy_mean" in value:
                log(f"{key}: test accuracy {value['accuracy_mean']:.4f} ± {value['accuracy_std']:.4f}")
    return results
