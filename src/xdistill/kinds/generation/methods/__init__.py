"""The generation kind's methods, one file each; every module here registers into :data:`METHODS`.

A generation method owns its training loop: it gets a :class:`MethodContext` (the teacher, the task's
training images, the config, a way to build students, a log) and returns a :class:`Distilled` (the student
that samples with ``sampling``, any further students it made, and its per-stage history). So a method may
train several networks side by side (a fake-score network beside a one-step generator, several students
each owning some classes) and pick its own updates, while the kind keeps run folders, evaluation and
reports the same for all.

    METHODS.register("progressive", GenerationMethod(train_progressive, "progressive distillation: ..."))
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from xdistill.registry import Registry, import_submodules


@dataclass
class MethodContext:
    """What a method trains from.

    teacher: a denoiser (``velocity(x, t, y, guidance=None)``, ``num_classes``, ``input_shape``) in eval mode.
    x0 [N, C, H, W] in [-1, 1] and y [N]: the task's training images and labels.
    guidance: the classifier-free guidance scale the student reproduces (1 = none).
    steps: the student's sampling steps; iterations, batch_size, lr: the optimisation budget.
    teacher_steps: Euler steps of the teacher's trajectories.
    """

    teacher: Any
    x0: torch.Tensor
    y: torch.Tensor
    config: Any
    guidance: float
    steps: int
    iterations: int
    batch_size: int
    lr: float
    teacher_steps: int
    log: Callable[[str], None] | None = None

    def batch(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(self.x0), (self.batch_size,), generator=generator)
        return self.x0[index], self.y[index]

    def student(self, guidance_embedding: bool = False) -> nn.Module:
        """The student network: a copy of the teacher (its weights as the start, the usual practice) when the
        config gives no student knobs, else a fresh ``config.student.name`` (default ``unet``) of those knobs."""
        from xdistill.students import build_student

        knobs = dict(self.config.student.knobs)
        if not knobs and not isinstance(getattr(self.teacher, "config", None), dict):
            from xdistill.errors import XDistillError

            raise XDistillError("This teacher (a diffusers model) cannot be copied into a unet student. Give the "
                                "student's size instead, e.g. in a --config file: student: {knobs: {width: 16, "
                                "mults: [1, 2, 4]}}.")
        if not knobs:
            student = copy.deepcopy(self.teacher)
            if guidance_embedding and getattr(student, "guidance", None) is None:
                fresh = build_student("unet", tuple(self.teacher.input_shape), self.teacher.num_classes,
                                      **{**self.teacher.config, "guidance_embedding": True})
                fresh.load_state_dict(student.state_dict(), strict=False)
                student = fresh
        else:
            if "mults" in knobs:
                knobs["mults"] = tuple(knobs["mults"])
            knobs["guidance_embedding"] = guidance_embedding or bool(knobs.get("guidance_embedding", False))
            student = build_student(self.config.student.name or "unet", tuple(self.teacher.input_shape),
                                    self.teacher.num_classes, **knobs)
        return student.train().requires_grad_(True)

    def info(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


@dataclass
class Distilled:
    """A method's result: ``student`` samples with ``sampling`` ({"steps": k, "guidance": w}); ``stages`` maps a
    name to (network, sampling) for further students made on the way (progressive's halvings)."""

    student: nn.Module
    sampling: dict[str, float]
    stages: dict[str, tuple[nn.Module, dict[str, float]]] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class GenerationMethod:
    """One generation method: ``train(ctx) -> Distilled`` and how it is described."""

    train: Callable[[MethodContext], Distilled]
    summary: str
    default_iterations: int = 600  # optimisation steps when the config's 'iterations' is 0
    default_teacher_steps: int = 16  # teacher Euler steps when the config's 'teacher_steps' is 0
    default_lr: float = 2e-4  # learning rate when the config's 'lr' is the general default
    teachers: bool = True
    unlabeled: bool = False
    init: str = "none"  # generation students start from the teacher (or fresh with student.knobs), never from init=
    baseline: bool = False
    options: tuple[str, ...] = ()
    # Whether a run with this config trains on the task's images; False (data-free): the method sees none of them.
    real_images: Callable[[Any], bool] = lambda config: True

    def describe(self) -> dict[str, Any]:
        return {"summary": self.summary, "teachers": self.teachers, "unlabeled": self.unlabeled,
                "init": self.init, "baseline": self.baseline, "options": list(self.options)}


class Averaged:
    """An exponential moving average of a network's weights (the target network of consistency training)."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        self.network = copy.deepcopy(network).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        for a, p in zip(self.network.parameters(), network.parameters()):
            a.lerp_(p, 1.0 - self.decay)


def optimise(parameters, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in parameters if p.requires_grad], lr=lr, weight_decay=0.0)


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters) -> float:
    """One update: the loss's gradients, clipped to norm 1 over ``parameters``, then the optimiser's step; the
    loss's value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()
    return loss.item()


def log_every(ctx: MethodContext, what: str, step: int, total: int, losses: list[float], started: float) -> None:
    if (step + 1) % 100 == 0 or step + 1 == total:
        recent = losses[-100:]
        ctx.info(f"{what} step {step + 1}/{total}: loss {sum(recent) / len(recent):.5f} "
                 f"({time.perf_counter() - started:.0f} s)")


METHODS: Registry[GenerationMethod] = Registry("generation method")

import_submodules(__name__, __path__)

__all__ = ["METHODS", "Distilled", "GenerationMethod", "MethodContext"]
