"""``dmd``: a one-step generator by distribution matching (DMD2: Yin et al. 2024, "Improved Distribution Matching
Distillation for Fast Image Synthesis"; DMD: Yin et al. 2024).

The generator G(z, y) = z - v_G(z, 1, y) (``one_step.py``) starts as a copy of the teacher. Beside it a
fake-score network, also a copy of the teacher, learns the score of the generator's own samples by flow
matching. The generator descends the distribution-matching gradient, the difference of the fake and the real
(guided teacher) scores at a noised sample, which is the gradient of KL(generator || teacher) averaged over
noise levels (``distribution_matching_gradient``). As in DMD2 there is no regression loss on teacher
trajectories (no paired noise-image data set is built), the fake-score network is updated ``fake_updates``
times per generator update (the two time-scale update rule; DMD2 uses 5), and an optional GAN term
(``gan_weight`` > 0) puts a small real-versus-fake head on the fake-score network's bottleneck features
(hooked on ``mid2``): the head and the fake-score network learn to tell noised training images from noised
generator samples, the generator to fool them (non-saturating losses). With ``gan_weight=0`` no training
image is used at all.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn
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
from xdistill.kinds.generation.one_step import (
    comparison_times,
    distribution_matching_gradient,
    distribution_matching_loss,
    one_step,
)

DEFAULT_FAKE_UPDATES = 5  # DMD2's two time-scale update rule: five fake-score updates per generator update
DISCRIMINATOR_WEIGHT = 0.1  # weight of the head's real-versus-fake loss beside the fake-score network's flow matching


class BottleneckFeatures:
    """The output of one module of a network, kept by a forward hook at every forward pass."""

    def __init__(self, module: nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        self.value = output


class RealFakeHead(nn.Module):
    """DMD2's discriminator head: bottleneck features [N, c, h, w] -> one real-versus-fake logit [N]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(channels, channels, 1), nn.SiLU())
        self.logit = nn.Linear(channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logit(self.body(features).mean(dim=(2, 3)))[:, 0]


def fake_score_network(teacher) -> nn.Module:
    """A trainable copy of the teacher: the fake-score network starts where the real score is."""
    if not isinstance(getattr(teacher, "config", None), dict) or not hasattr(teacher, "mid2"):
        from xdistill.errors import XDistillError

        raise XDistillError("dmd, sid and multi-student start their fake-score network as a copy of the teacher, so "
                            "they need an xdistill 'unet' teacher folder. Got a teacher of another format (a "
                            "diffusers model); use progressive, consistency or guidance with it.")
    return copy.deepcopy(teacher).train().requires_grad_(True)


def fake_score_step(fake, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Flow-matching loss of the fake-score network on generator samples x [N, C, H, W] (held fixed)."""
    noise, t = torch.randn_like(x), torch.rand(len(x))
    return F.mse_loss(fake.velocity(noisy(x, noise, t), t, y), noise - x)


def class_labels(n: int, classes: torch.Tensor) -> torch.Tensor:
    """n labels drawn uniformly from ``classes`` [K]."""
    return classes[torch.randint(0, len(classes), (n,))]


def real_batch(ctx: MethodContext, classes: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n training images (and labels) of the given classes."""
    pool = torch.nonzero(torch.isin(ctx.y, classes)).flatten()
    index = pool[torch.randint(0, len(pool), (n,))]
    return ctx.x0[index], ctx.y[index]


def distribution_matching(ctx: MethodContext, generator: nn.Module, classes: torch.Tensor, iterations: int,
                          what: str = "dmd") -> list[dict]:
    """Train the one-step ``generator`` on labels ``classes`` for ``iterations`` generator updates (DMD2);
    returns the history. Reads ``fake_updates`` and ``gan_weight`` from the context's config."""
    fake_updates, gan_weight = ctx.config.fake_updates or DEFAULT_FAKE_UPDATES, ctx.config.gan_weight
    real_velocity = sampling_velocity(ctx.teacher, ctx.guidance)
    fake = fake_score_network(ctx.teacher)
    features = BottleneckFeatures(fake.mid2)
    head = RealFakeHead(fake.mid2.conv2.out_channels) if gan_weight > 0 else None
    fake_parameters = list(fake.parameters()) + (list(head.parameters()) if head is not None else [])
    fake_optimizer = optimise(fake_parameters, ctx.lr)
    generator_optimizer = optimise(generator.parameters(), ctx.lr)
    n = ctx.batch_size
    started, losses, fake_losses, head_losses = time.perf_counter(), [], [], []
    for step in range(iterations):
        for _ in range(fake_updates):  # the fake score follows the generator on a faster time scale
            y = class_labels(n, classes)
            with torch.no_grad():
                x = one_step(generator, torch.randn((n, *ctx.teacher.input_shape)), y)
            loss = fake_score_step(fake, x, y)
            fake_losses.append(loss.item())
            if head is not None:
                fake_logits = head(features.value)
                x_real, y_real = real_batch(ctx, classes, n)
                t = torch.rand(n)
                fake.velocity(noisy(x_real, torch.randn_like(x_real), t), t, y_real)
                head_loss = F.softplus(fake_logits).mean() + F.softplus(-head(features.value)).mean()
                head_losses.append(head_loss.item())
                loss = loss + DISCRIMINATOR_WEIGHT * head_loss
            descend(fake_optimizer, loss, fake_parameters)
        y = class_labels(n, classes)
        x = one_step(generator, torch.randn((n, *ctx.teacher.input_shape)), y)
        t = comparison_times(n)
        x_t = noisy(x, torch.randn_like(x), t)
        with torch.no_grad():
            v_real = real_velocity(x_t.detach(), t, y)
        for network in (fake, head):
            if network is not None:
                network.requires_grad_(False)
        if head is not None:  # one pass of the fake-score network serves both terms; the GAN term needs x_t's graph
            v_fake = fake.velocity(x_t, t, y)
            gan = F.softplus(-head(features.value)).mean()
        else:
            with torch.no_grad():
                v_fake = fake.velocity(x_t, t, y)
            gan = torch.zeros(())
        for network in (fake, head):
            if network is not None:
                network.requires_grad_(True)
        gradient = distribution_matching_gradient(x.detach(), x_t.detach(), t, v_real, v_fake.detach())
        loss = distribution_matching_loss(x, gradient) + gan_weight * gan
        losses.append(descend(generator_optimizer, loss, generator.parameters()))
        log_every(ctx, what, step, iterations, losses, started)
    features.handle.remove()
    recent = slice(-50 * max(1, fake_updates), None)
    record = {"stage": what, "iterations": iterations, "fake_updates": iterations * fake_updates,
              "loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
              "fake_score_loss": sum(fake_losses[recent]) / max(1, len(fake_losses[recent])),
              "seconds": time.perf_counter() - started}
    if head_losses:
        record["discriminator_loss"] = sum(head_losses[recent]) / len(head_losses[recent])
    return [record]


def train_dmd(ctx: MethodContext) -> Distilled:
    generator = ctx.student()
    history = distribution_matching(ctx, generator, torch.arange(ctx.teacher.num_classes), ctx.iterations)
    return Distilled(generator.eval().requires_grad_(False), {"steps": 1, "guidance": 1.0}, {}, history)


METHODS.register("dmd", GenerationMethod(
    train_dmd, "distribution matching distillation (DMD2): a one-step generator, a fake-score network on a faster "
    "time scale, an optional GAN head on its features",
    default_iterations=100, default_lr=1e-4, real_images=lambda config: config.gan_weight > 0,
    options=("iterations", "guidance", "fake_updates", "gan_weight")))
