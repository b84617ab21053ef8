"""``sid``: score identity distillation (SiD: Zhou et al. 2024, "Score identity Distillation: Exponentially Fast
Distillation of Pretrained Diffusion Models for One-Step Generation"), data-free.

The one-step generator G(z, y) = z - v_G(z, 1, y) (``one_step.py``) starts as a copy of the teacher; a
fake-score network, also a copy of the teacher, learns the score of the generator's samples by flow matching.
They alternate (``fake_updates`` fake-score updates per generator update, 1 in the paper). The generator
minimises the score-identity loss (``score_identity_loss``, alpha = ``sid_alpha``, 1.2 in the paper) between the
guided teacher's and the fake network's denoised images at a noised generator sample; its gradient reaches the
generator through the sample itself and, through the noised sample, through both networks. No training image
is used: labels are drawn uniformly, every image the networks see comes from the generator, and the run's
metrics record ``data_free: true`` (the method is given no training images at all).
"""

from __future__ import annotations

import time

import torch

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
from xdistill.kinds.generation.methods.dmd import class_labels, fake_score_network, fake_score_step
from xdistill.kinds.generation.one_step import comparison_times, denoised_from_velocity, one_step, score_identity_loss

DEFAULT_FAKE_UPDATES = 1  # SiD alternates one fake-score update and one generator update


def train_sid(ctx: MethodContext) -> Distilled:
    fake_updates = ctx.config.fake_updates or DEFAULT_FAKE_UPDATES
    alpha = ctx.config.sid_alpha
    real_velocity = sampling_velocity(ctx.teacher, ctx.guidance)
    generator, fake = ctx.student(), fake_score_network(ctx.teacher)
    generator_optimizer, fake_optimizer = optimise(generator.parameters(), ctx.lr), optimise(fake.parameters(), ctx.lr)
    classes, n, shape = torch.arange(ctx.teacher.num_classes), ctx.batch_size, ctx.teacher.input_shape
    started, losses, fake_losses = time.perf_counter(), [], []
    for step in range(ctx.iterations):
        for _ in range(fake_updates):
            y = class_labels(n, classes)
            with torch.no_grad():
                x = one_step(generator, torch.randn((n, *shape)), y)
            loss = fake_score_step(fake, x, y)
            fake_losses.append(descend(fake_optimizer, loss, fake.parameters()))
        y = class_labels(n, classes)
        x_g = one_step(generator, torch.randn((n, *shape)), y)
        t = comparison_times(n)
        x_t = noisy(x_g, torch.randn_like(x_g), t)
        fake.requires_grad_(False)
        x0_real = denoised_from_velocity(x_t, t, real_velocity(x_t, t, y))
        x0_fake = denoised_from_velocity(x_t, t, fake.velocity(x_t, t, y))
        fake.requires_grad_(True)
        loss = score_identity_loss(x_g, x0_real, x0_fake, alpha)
        losses.append(descend(generator_optimizer, loss, generator.parameters()))
        log_every(ctx, "sid", step, ctx.iterations, losses, started)
    history = [{"stage": "sid", "iterations": ctx.iterations, "fake_updates": ctx.iterations * fake_updates,
                "alpha": alpha, "loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
                "fake_score_loss": sum(fake_losses[-50:]) / max(1, len(fake_losses[-50:])),
                "seconds": time.perf_counter() - started}]
    return Distilled(generator.eval().requires_grad_(False), {"steps": 1, "guidance": 1.0}, {}, history)


METHODS.register("sid", GenerationMethod(
    train_sid, "score identity distillation (SiD), data-free: a one-step generator and a fake-score network, "
    "the score-identity loss against the guided teacher, no training images",
    default_iterations=200, default_lr=3e-5, real_images=lambda config: False,
    options=("iterations", "guidance", "fake_updates", "sid_alpha")))
