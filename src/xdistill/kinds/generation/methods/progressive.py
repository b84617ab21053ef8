"""``progressive``: progressive distillation (Salimans and Ho 2022), the classic few-step baseline.

The student starts as the teacher and learns to cover in one Euler step what its teacher covers in two:
from x_t on the student's grid (t = k / S, x_t the noised training image), two teacher steps of size 1/(2S)
reach x_{t - 1/S}, and the student regresses the velocity ``(x_t - x_{t - 1/S}) S`` that lands there in one.
The first teacher is the guided teacher at ``teacher_steps`` (rounded up to ``steps`` x a power of two), so the
student folds guidance in; each later stage's teacher is the previous stage's student, and S halves every stage
until it reaches ``steps``. Every stage's student is kept (``stages/steps-S``), so one run gives every halving.
"""

from __future__ import annotations

import copy
import time

import torch
from torch.nn import functional as F

from xdistill.kinds.generation.flow import noisy, sampling_velocity
from xdistill.kinds.generation.methods import (
    METHODS,
    Distilled,
    GenerationMethod,
    MethodContext,
    descend,
    log_every,
    optimise,
)


def halvings(teacher_steps: int, steps: int) -> list[int]:
    """The students' step counts, from half the teacher's (rounded up to steps x 2^k) down to ``steps``."""
    stages, current = [], steps
    while current * 2 <= max(teacher_steps, 2 * steps):
        stages.append(current)
        current *= 2
    return stages[::-1]


def train_progressive(ctx: MethodContext) -> Distilled:
    stages = halvings(ctx.teacher_steps, ctx.steps)
    per_stage = max(1, ctx.iterations // len(stages))
    teacher = sampling_velocity(ctx.teacher, ctx.guidance)
    student = ctx.student()
    made, history = {}, []
    for steps in stages:
        optimizer = optimise(student.parameters(), ctx.lr)
        started, losses, dt = time.perf_counter(), [], 1.0 / steps
        for step in range(per_stage):
            x0, y = ctx.batch()
            t = torch.randint(1, steps + 1, (len(x0),)).float() * dt
            x_t = noisy(x0, torch.randn_like(x0), t)
            with torch.no_grad():
                x_mid = x_t - 0.5 * dt * teacher(x_t, t, y)
                x_end = x_mid - 0.5 * dt * teacher(x_mid, t - 0.5 * dt, y)
            loss = F.mse_loss(student.velocity(x_t, t, y), (x_t - x_end) / dt)
            losses.append(descend(optimizer, loss, student.parameters()))
            log_every(ctx, f"progressive {2 * steps}->{steps} steps", step, per_stage, losses, started)
        history.append({"stage": f"steps-{steps}", "iterations": per_stage, "loss": sum(losses[-50:]) / len(losses[-50:]),
                        "seconds": time.perf_counter() - started})
        frozen = copy.deepcopy(student).eval().requires_grad_(False)
        made[f"steps-{steps}"] = (frozen, {"steps": steps, "guidance": 1.0})
        teacher = sampling_velocity(frozen, 1.0)  # the guidance is folded in from the first stage on
    return Distilled(student.eval(), {"steps": ctx.steps, "guidance": 1.0}, made, history)


METHODS.register("progressive", GenerationMethod(
    train_progressive, "progressive distillation: halve the guided teacher's Euler steps stage by stage down to steps=",
    default_iterations=400, default_teacher_steps=32, options=("steps", "teacher_steps", "iterations", "guidance")))
