"""``multi-student``: several smaller one-step students, each owning an even share of the classes, chosen by the
class at sampling time (multi-student distillation, MSD: Song et al. 2024).

The classes are split into ``num_students`` contiguous groups of (nearly) equal size. Each student is a fresh
``unet`` smaller than the teacher (``student.knobs``, or by default the teacher's knobs at half its width, about
a quarter of its parameters), so it cannot start as a copy of the teacher; as in MSD it first learns the
teacher's guided velocity on noised training images of its classes (teacher score matching,
``MATCHING_PER_UPDATE`` times as many updates as it gets below, each a single cheap pass), then becomes a
one-step generator for its classes by distribution matching exactly as ``dmd`` (its own fake-score network,
``fake_updates`` per generator update, optional GAN term). The ``iterations`` generator updates are shared
out evenly, so the run costs about what one ``dmd`` run of that budget costs. The result samples with one network evaluation per image: the
student owning each label draws it (``xdistill.models.class_routed``). The run folder keeps every student as
its own denoiser folder (``student/members/<i>/``), and ``metrics.json`` scores each on its own classes.
"""

from __future__ import annotations

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
from xdistill.kinds.generation.methods.dmd import distribution_matching, real_batch
from xdistill.models.class_routed import ClassRouted

MATCHING_PER_UPDATE = 3  # teacher score matching updates of a student per distribution-matching update it gets
MATCHING_LR = 1e-3  # learning rate of that stage (a fresh network learns faster than a fine-tuned one)


def class_groups(num_classes: int, num_students: int) -> list[list[int]]:
    """The classes split into ``num_students`` contiguous groups whose sizes differ by at most one."""
    size, extra = divmod(num_classes, num_students)
    groups, start = [], 0
    for index in range(num_students):
        end = start + size + (1 if index < extra else 0)
        groups.append(list(range(start, end)))
        start = end
    return groups


def member_knobs(teacher) -> dict:
    """The default student: the teacher's knobs at half its width (at least 8)."""
    knobs = dict(teacher.config)
    knobs["width"] = max(8, int(knobs["width"]) // 2)
    knobs["guidance_embedding"] = False
    return knobs


def teacher_score_matching(ctx: MethodContext, student, classes: torch.Tensor, iterations: int, what: str) -> dict:
    """Regress the guided teacher's velocity at noised training images of ``classes`` (MSD's first stage)."""
    teacher = sampling_velocity(ctx.teacher, ctx.guidance)
    optimizer = optimise(student.parameters(), MATCHING_LR)
    started, losses = time.perf_counter(), []
    for step in range(iterations):
        x0, y = real_batch(ctx, classes, ctx.batch_size)
        t = torch.rand(len(x0))
        x_t = noisy(x0, torch.randn_like(x0), t)
        with torch.no_grad():
            target = teacher(x_t, t, y)
        loss = F.mse_loss(student.velocity(x_t, t, y), target)
        losses.append(descend(optimizer, loss, student.parameters()))
        log_every(ctx, what, step, iterations, losses, started)
    return {"stage": what, "iterations": iterations, "loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
            "seconds": time.perf_counter() - started}


def train_multi_student(ctx: MethodContext) -> Distilled:
    from xdistill.errors import XDistillError
    from xdistill.students import build_student, count_params

    num_classes, count = ctx.teacher.num_classes, ctx.config.num_students
    if count > num_classes:
        raise XDistillError(f"'num_students' must be at most the task's {num_classes} classes (each student owns at "
                            f"least one). Got {count}.")
    knobs = dict(ctx.config.student.knobs) or member_knobs(ctx.teacher)
    if "mults" in knobs:
        knobs["mults"] = tuple(knobs["mults"])
    members, history = [], []
    updates = max(1, ctx.iterations // count)
    for index, owned in enumerate(class_groups(num_classes, count)):
        classes = torch.tensor(owned)
        student = build_student("unet", tuple(ctx.teacher.input_shape), num_classes, **knobs).train()
        what = f"student {index} (classes {owned[0]}-{owned[-1]})"
        history.append({**teacher_score_matching(ctx, student, classes, MATCHING_PER_UPDATE * updates,
                                                 f"{what}, teacher score matching"),
                        "student": index, "classes": owned, "params": count_params(student)})
        for record in distribution_matching(ctx, student, classes, updates, f"{what}, distribution matching"):
            history.append({**record, "student": index, "classes": owned, "params": count_params(student)})
        members.append(student.eval().requires_grad_(False))
    router = ClassRouted(members, class_groups(num_classes, count))
    return Distilled(router.eval(), {"steps": 1, "guidance": 1.0}, {}, history)


METHODS.register("multi-student", GenerationMethod(
    train_multi_student, "several smaller one-step students (MSD), each owning an even share of the classes and "
    "trained by teacher score matching then distribution matching; the class picks the student",
    default_iterations=100, default_lr=1e-4, options=("iterations", "guidance", "num_students", "fake_updates",
                                                      "gan_weight", "student.knobs")))
