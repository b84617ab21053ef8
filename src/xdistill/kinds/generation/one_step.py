"""What the one-step generators share (``dmd``, ``sid``, ``multi-student``): scores from velocities, the one-step
generator, the fake-score network's update and the two distillation losses.

**Scores from velocities.** On the rectified-flow path x_t = (1 - t) x0 + t eps (``flow.py``) a velocity
v = eps - x0 fixes both ends: the denoised image x0 = x_t - t v and the noise eps = x_t + (1 - t) v. Tweedie's
formula for x_t | x0 ~ N((1 - t) x0, t^2 I) gives the score

    grad log p_t(x_t) = ((1 - t) E[x0 | x_t] - x_t) / t^2 = -E[eps | x_t] / t = -(x_t + (1 - t) v) / t,

so a velocity network is a score network (and the teacher's guided velocity the guided score).

**The one-step generator** G(z, y) = z - v_G(z, 1, y): one Euler step from t = 1 to 0, so the generator is an
ordinary ``unet`` that samples with ``steps=1`` and starts as the teacher (whose one step gives its blurry
posterior mean E[x0 | z]).

**The fake-score network** is a ``unet`` trained by flow matching on the generator's current samples
(``train_flow.flow_matching_loss``), so it tracks the score of the generator's distribution.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

T_MIN, T_MAX = 0.02, 0.98  # noise levels of the score comparisons; the ends divide by t or by 1 - t


def denoised_from_velocity(x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_t] [N, C, H, W] from a velocity prediction v at x_t and times t [N]."""
    return x_t - t.view(-1, 1, 1, 1) * v


def score_from_velocity(x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """grad log p_t(x_t) [N, C, H, W] from a velocity prediction v: -(x_t + (1 - t) v) / t (t in (0, 1])."""
    t = t.view(-1, 1, 1, 1)
    return -(x_t + (1.0 - t) * v) / t


def one_step(generator, noise: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Images [N, C, H, W] of a one-step generator from noise [N, C, H, W] and labels [N]: z - v(z, 1, y)."""
    return noise - generator.velocity(noise, torch.ones(len(noise), device=noise.device), y)


def comparison_times(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Times [n] ~ U[T_MIN, T_MAX] at which real and fake scores are compared."""
    return T_MIN + (T_MAX - T_MIN) * torch.rand(n, generator=generator)


def distribution_matching_gradient(x: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, v_real: torch.Tensor,
                                   v_fake: torch.Tensor) -> torch.Tensor:
    """The distribution-matching gradient [N, C, H, W] on generator samples x (DMD, Yin et al. 2024, eq. 7-8):

        w_t (s_fake(x_t) - s_real(x_t)),   w_t = t^2 / (1 - t) * C H W / ||x - E_real[x0 | x_t]||_1

    the weight of DMD's eq. 8 with alpha_t = 1 - t and sigma_t = t, so the gradient reads
    (E_fake[x0 | x_t] - E_real[x0 | x_t]) / mean|x - E_real[x0 | x_t]|. Descending it moves x towards the
    teacher's (real) denoised image and away from the fake one. The scores come from the velocities v_real
    (the guided teacher) and v_fake (the fake-score network) at x_t on the path from x at times t [N]."""
    s_real, s_fake = score_from_velocity(x_t, t, v_real), score_from_velocity(x_t, t, v_fake)
    x0_real = denoised_from_velocity(x_t, t, v_real)
    tt = t.view(-1, 1, 1, 1)
    normaliser = (x - x0_real).abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-5)
    return tt ** 2 / (1.0 - tt) * (s_fake - s_real) / normaliser


def distribution_matching_loss(x: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """0.5 * mean (x - sg(x - gradient))^2: a loss whose gradient with respect to x [N, C, H, W] is
    gradient / x.numel(), the usual way to apply DMD's gradient through autograd."""
    return 0.5 * F.mse_loss(x, (x - gradient).detach())


def score_identity_loss(x_g: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor, alpha: float) -> torch.Tensor:
    """The generator loss of score identity distillation (SiD, Zhou et al. 2024, eq. 23), per sample averaged:

        (1 - alpha) ||f_real - f_fake||^2 + (f_real - f_fake)^T (f_fake - x_g)

    with f_real, f_fake [N, C, H, W] the teacher's and the fake-score network's denoised images E[x0 | x_t] at
    x_t on the path from the generator's samples x_g, each sample's sum divided by C H W and by the SiD weight
    mean|x_g - f_real| (held fixed). Gradients flow into x_g and, through x_t, into both denoised images."""
    difference = x0_real - x0_fake
    per_sample = ((1.0 - alpha) * difference.square() + difference * (x0_fake - x_g)).mean(dim=(1, 2, 3))
    weight = (x_g - x0_real).detach().abs().mean(dim=(1, 2, 3)).clamp_min(1e-5)
    return (per_sample / weight).mean()
