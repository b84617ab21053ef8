"""The verbs that dispatch on the kind, for image generation: generate, and what cache and rank say."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from xdistill.errors import XDistillError, join_problems
from xdistill.kinds.generation.flow import sample_images, to_unit_images


def generate_images(source: Path, n: int = 16, steps: int | None = None, guidance: float | None = None,
                    seed: int = 0, label: int | None = None) -> dict:
    """``xdistill generate`` for a generation run or teacher folder: {"x": float32 [n, H, W] (or [n, H, W, C]) in
    [0, 1], "y": int64 [n] conditioning labels (uniform unless ``label``), "steps", "guidance", "classes"}."""
    from xdistill.kinds.generation.run import load_generator

    problems = []
    if n < 1:
        problems.append(f"--n must be >= 1. Got {n}.")
    if steps is not None and steps < 1:
        problems.append(f"--steps must be >= 1. Got {steps}.")
    if guidance is not None and not (math.isfinite(guidance) and guidance >= 0):
        problems.append(f"--guidance must be a finite number >= 0 (1 = none). Got {guidance}.")
    if problems:
        raise XDistillError(join_problems(problems, "Invalid generate options"))
    network, sampling = load_generator(Path(source))
    if label is not None and not 0 <= label < network.num_classes:
        raise XDistillError(f"--class must lie in 0..{network.num_classes - 1} (the model's classes). Got {label}.")
    steps = steps or sampling["steps"]
    guidance = sampling["guidance"] if guidance is None else guidance
    labels = None if label is None else torch.full((n,), label, dtype=torch.long)
    x, y = sample_images(network, n, steps, guidance, seed, labels)
    return {"x": to_unit_images(x), "y": y.numpy(), "steps": steps, "guidance": guidance}


def cache_generation(task, teachers, config, log=None) -> dict:
    raise XDistillError("Generation teachers run live while a method trains; there is nothing to cache. Run "
                        "`xdistill distill --task T --zoo Z --method M --out RUN` directly.")


def prepare_generation(task, teachers, cache=None, selection=None, views=None, log=None):
    raise XDistillError("Ranking diffusion teachers is not available yet: distill uses the zoo's first diffusion "
                        "teacher, or the one named with teachers=[NAME]. Score a teacher with "
                        "`xdistill eval TEACHER_DIR --task T`.")
