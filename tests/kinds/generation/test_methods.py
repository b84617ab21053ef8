"""The generation methods' schedules and what each one trains, on the tiny world's teacher."""

from __future__ import annotations

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.kinds.generation.methods import METHODS, MethodContext
from xdistill.kinds.generation.methods.consistency import segment_schedule
from xdistill.kinds.generation.methods.guidance import adapter_parameters
from xdistill.kinds.generation.methods.progressive import halvings
from xdistill.models.denoiser import load_denoiser
from xdistill.train.config import DistillConfig, StudentConfig


def test_schedules():
    assert halvings(32, 4) == [16, 8, 4]
    assert halvings(16, 1) == [8, 4, 2, 1]
    assert halvings(3, 4) == [4]  # a teacher grid finer than 2 x steps is rounded up to one halving
    assert segment_schedule(4) == [8, 4]
    assert segment_schedule(1) == [8, 4, 2, 1]
    assert segment_schedule(8) == [8] and segment_schedule(16) == [16]


def context(gen_world, **config) -> MethodContext:
    teacher, _ = load_denoiser(gen_world.teacher)
    x0 = torch.rand(40, 1, 8, 8) * 2 - 1
    return MethodContext(teacher=teacher, x0=x0, y=torch.arange(40) % 10, config=DistillConfig(**config),
                         guidance=2.0, steps=2, iterations=3, batch_size=4, lr=1e-3, teacher_steps=4)


def test_guidance_trains_only_adapters_and_reads_the_scale(gen_world):
    ctx = context(gen_world)
    torch.manual_seed(0)
    result = METHODS.get("guidance").train(ctx)
    student, teacher = result.student, ctx.teacher
    assert student.guidance is not None and result.sampling == {"steps": 2, "guidance": 2.0}
    trained = set(adapter_parameters(student))
    assert any(n.startswith("guidance.") for n in trained) and not any(".conv" in n for n in trained)
    frozen = dict(teacher.named_parameters())
    for name, parameter in student.named_parameters():
        if name in frozen and name not in trained:
            torch.testing.assert_close(parameter, frozen[name], rtol=0, atol=0)  # untouched, by construction


def test_progressive_keeps_every_halving(gen_world):
    ctx = context(gen_world)
    ctx.teacher_steps, ctx.steps = 8, 1
    result = METHODS.get("progressive").train(ctx)
    assert list(result.stages) == ["steps-4", "steps-2", "steps-1"]
    assert [h["stage"] for h in result.history] == ["steps-4", "steps-2", "steps-1"]


def test_student_of_its_own_size_and_unknown_knobs(gen_world):
    ctx = context(gen_world, student=StudentConfig("unet", {"width": 8, "mults": [1], "attention": False}))
    student = ctx.student()
    assert student.config["mults"] == [1] and sum(p.numel() for p in student.parameters()) < sum(
        p.numel() for p in ctx.teacher.parameters())
    with pytest.raises(XDistillError, match="has no knob 'depth'"):
        context(gen_world, student=StudentConfig("unet", {"depth": 2})).student()
