"""``consistency``: consistency distillation with the trajectory split into segments (trajectory-segmented
consistency distillation, Hyper-SD, Ren et al. 2024; consistency models, Song et al. 2023).

Time [0, 1] is cut into S equal segments; the student maps any x_t to the start of its segment (the lower
edge e of the segment holding t), parameterised so the boundary condition holds by construction:
``f(x_t, t) = x_t + (e - t) v_student(x_t, t)``. Each segment is split into teacher steps of size
1/(S * K) (K = ``teacher_steps`` / S, at least 1); from x_t (a noised training image at a grid time) one
guided teacher Euler step reaches x_{t'}, and the student at t is pulled towards the target network's
``f(x_{t'}, t')``, which is x_{t'} itself when t' = e. The loss is taken on the implied velocity,
``|v_student - (x_t - f_target) / (t - e)|^2``, so every time weighs alike. The target network is an
exponential average of the student (decay ``TARGET_DECAY``). As in Hyper-SD, S shrinks stage by stage
(8, 4, 2, ... down to ``steps``, each stage starting from the last), and the student samples with one jump per
segment: ``steps`` network evaluations, guidance folded in. Each earlier stage's student is kept as well
(``stages/steps-S``).
"""

from __future__ import annotations

import copy
import time

import torch
from torch.nn import functional as F

from xdistill.kinds.generation.flow import noisy, sampling_velocity
from xdistill.kinds.generation.methods import (
    METHODS,
    Averaged,
    Distilled,
    GenerationMethod,
    MethodContext,
    descend,
    log_every,
    optimise,
)

TARGET_DECAY = 0.95  # the target network's weight average (LCM's 0.95)
FIRST_SEGMENTS = 8  # Hyper-SD's stages: 8 segments, then 4, 2, 1


def segment_schedule(steps: int) -> list[int]:
    """Segments per stage: from max(steps, 8) halving down to ``steps``."""
    stages, current = [], max(steps, FIRST_SEGMENTS)
    while current > steps:
        stages.append(current)
        current //= 2
    return stages + [steps] if stages and stages[-1] != steps else stages or [steps]


def train_consistency(ctx: MethodContext) -> Distilled:
    teacher = sampling_velocity(ctx.teacher, ctx.guidance)
    student = ctx.student()
    schedule = segment_schedule(ctx.steps)
    per_stage = max(1, ctx.iterations // len(schedule))
    history, made = [], {}
    for segments in schedule:
        target = Averaged(student, TARGET_DECAY)
        optimizer = optimise(student.parameters(), ctx.lr)
        sub = max(1, ctx.teacher_steps // segments)
        grid = segments * sub
        started, losses = time.perf_counter(), []
        for step in range(per_stage):
            x0, y = ctx.batch()
            n = torch.randint(1, grid + 1, (len(x0),))
            t, t_prev = n.float() / grid, (n - 1).float() / grid
            edge = torch.div(n - 1, sub, rounding_mode="floor").float() * sub / grid
            x_t = noisy(x0, torch.randn_like(x0), t)
            with torch.no_grad():
                x_prev = x_t + (t_prev - t).view(-1, 1, 1, 1) * teacher(x_t, t, y)
                aim = x_prev + (edge - t_prev).view(-1, 1, 1, 1) * target.network.velocity(x_prev, t_prev, y)
                implied = (x_t - aim) / (t - edge).view(-1, 1, 1, 1)
            loss = F.mse_loss(student.velocity(x_t, t, y), implied)
            descend(optimizer, loss, student.parameters())
            target.update(student)
            losses.append(loss.item())
            log_every(ctx, f"consistency, {segments} segments", step, per_stage, losses, started)
        history.append({"stage": f"segments-{segments}", "iterations": per_stage,
                        "loss": sum(losses[-50:]) / len(losses[-50:]), "seconds": time.perf_counter() - started})
        if segments != ctx.steps:  # an earlier stage's student, kept: it samples with one jump per segment
            made[f"steps-{segments}"] = (copy.deepcopy(student).eval().requires_grad_(False),
                                         {"steps": segments, "guidance": 1.0})
    return Distilled(student.eval(), {"steps": ctx.steps, "guidance": 1.0}, made, history)


METHODS.register("consistency", GenerationMethod(
    train_consistency, "consistency distillation over trajectory segments (Hyper-SD), segments halving down to steps=",
    default_iterations=400, default_teacher_steps=32, options=("steps", "teacher_steps", "iterations", "guidance")))
