"""``guidance``: the guided teacher folded into the student through adapters, one network evaluation per step
instead of two (adapter guidance distillation, Jensen et al. 2025; guidance distillation, Meng et al. 2023).

The student is the teacher with a guidance-scale embedding added to its time embedding (zero-initialised, so
training starts from the unguided teacher). Only adapters train: that embedding, the per-block projections of
the embedding and the normalisation scales; the convolutions and attention stay the teacher's. The training
states are those the guided sampler visits: ``TRAJECTORIES`` teacher trajectories of ``teacher_steps`` Euler
steps, each at a guidance scale drawn from [1, guidance + 1] and a uniform label, record every (x_t, t, y, w)
with the guided velocity the teacher took there; the student regresses that velocity in one pass. It samples at
any step count, reading the scale (``guidance=``) as an input.
"""

from __future__ import annotations

import time

import torch
from torch.nn import functional as F

from xdistill.kinds.generation.flow import time_grid
from xdistill.kinds.generation.methods import METHODS, Distilled, GenerationMethod, MethodContext, log_every, optimise

TRAJECTORIES = 512
ADAPTER_NAMES = ("guidance.", ".emb.", "norm")


def adapter_parameters(student) -> list[str]:
    """Names of the parameters that train: the guidance embedding, the blocks' embedding projections, norms."""
    return [name for name, _ in student.named_parameters() if any(part in name for part in ADAPTER_NAMES)]


@torch.inference_mode()
def guided_states(teacher, n: int, steps: int, max_guidance: float, generator: torch.Generator, batch: int = 256):
    """(x_t, t, y, w, v) of n guided teacher trajectories of ``steps`` Euler steps: every visited state with the
    guided velocity taken there; w per trajectory ~ U[1, max_guidance]."""
    xs, ts, ys, ws, vs = [], [], [], [], []
    grid = time_grid(steps)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        x = torch.randn((size, *teacher.input_shape), generator=generator)
        y = torch.randint(0, teacher.num_classes, (size,), generator=generator)
        w = 1.0 + (max_guidance - 1.0) * torch.rand(size, generator=generator)
        for t, t_next in zip(grid[:-1].tolist(), grid[1:].tolist()):
            tt = torch.full((size,), t)
            both = teacher.velocity(torch.cat([x, x]), torch.cat([tt, tt]),
                                    torch.cat([y, torch.full_like(y, teacher.num_classes)]))
            conditional, unconditional = both.chunk(2)
            v = unconditional + w.view(-1, 1, 1, 1) * (conditional - unconditional)
            xs.append(x), ts.append(tt), ys.append(y), ws.append(w), vs.append(v)
            x = x + (t_next - t) * v
    return tuple(torch.cat(a) for a in (xs, ts, ys, ws, vs))


def train_guidance(ctx: MethodContext) -> Distilled:
    generator = torch.Generator().manual_seed(ctx.config.seed)
    max_guidance = max(ctx.guidance, 1.0) + 1.0
    started = time.perf_counter()
    x_t, t, y, w, v = guided_states(ctx.teacher, TRAJECTORIES, ctx.teacher_steps, max_guidance, generator)
    ctx.info(f"guidance: {len(x_t)} guided teacher states from {TRAJECTORIES} trajectories "
             f"({time.perf_counter() - started:.0f} s)")
    student = ctx.student(guidance_embedding=True)
    trained = set(adapter_parameters(student))
    for name, parameter in student.named_parameters():
        parameter.requires_grad_(name in trained)
    optimizer = optimise(student.parameters(), ctx.lr)
    started, losses = time.perf_counter(), []
    for step in range(ctx.iterations):
        index = torch.randint(0, len(x_t), (ctx.batch_size,), generator=generator)
        loss = F.mse_loss(student.velocity(x_t[index], t[index], y[index], w[index]), v[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        log_every(ctx, "guidance adapters", step, ctx.iterations, losses, started)
    student.requires_grad_(False)
    adapters = sum(p.numel() for n, p in student.named_parameters() if n in trained)
    history = [{"stage": "adapters", "iterations": ctx.iterations, "adapter_params": adapters,
                "loss": sum(losses[-50:]) / len(losses[-50:]), "seconds": time.perf_counter() - started}]
    return Distilled(student.eval(), {"steps": ctx.steps, "guidance": ctx.guidance}, {}, history)



METHODS.register("guidance", GenerationMethod(
    train_guidance, "guidance distillation with adapters: the guided teacher in one network evaluation per step",
    default_iterations=400, default_teacher_steps=16, default_lr=1e-3, options=("steps", "teacher_steps", "iterations", "guidance")))
