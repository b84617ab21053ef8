"""Rectified flow (flow matching with straight paths): the noising path, the velocity target, the Euler
sampler and classifier-free guidance, shared by the teacher, the students and every method.

Images live in [-1, 1]. Time runs from t = 0 (data) to t = 1 (noise):

    x_t = (1 - t) x_0 + t eps,    v = dx_t/dt = eps - x_0            (Liu et al. 2023; Lipman et al. 2023)

A network predicts v; sampling integrates dx/dt = v from t = 1 down to t = 0 with Euler steps
``x_{t'} = x_t + (t' - t) v(x_t, t)``. A denoiser is anything with
``velocity(x [N, C, H, W], t [N], y [N], guidance [N] | None) -> [N, C, H, W]`` whose label
``num_classes`` is the null class.

Classifier-free guidance (Ho and Salimans 2022) with scale w: ``v = v(x, t, null) + w (v(x, t, y) - v(x, t, null))``;
w = 1 is the plain conditional model (one network evaluation), any other w costs two.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def to_model_space(x_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images [N, H, W] or [N, H, W, C] -> float [N, C, H, W] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(x_uint8)).float() / 127.5 - 1.0
    return x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)


def to_unit_images(x: torch.Tensor) -> np.ndarray:
    """Model-space images [N, C, H, W] -> float32 in [0, 1], [N, H, W] (one channel) or [N, H, W, C]."""
    x = ((x.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
    return (x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)).numpy().astype(np.float32)


def noisy(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t [N, C, H, W] on the straight path between x0 (t = 0) and noise (t = 1)."""
    t = t.view(-1, 1, 1, 1)
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def guided_velocity(denoiser, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, guidance: float,
                    null: int) -> torch.Tensor:
    """Classifier-free guided velocity [N, C, H, W]; one batched pass of 2N rows when guidance != 1."""
    if guidance == 1.0:
        return denoiser.velocity(x, t, y)
    both = denoiser.velocity(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
    conditional, unconditional = both.chunk(2)
    return unconditional + guidance * (conditional - unconditional)


def sampling_velocity(network, guidance: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``velocity(x, t, y)`` of a network sampled at guidance scale ``guidance``: a network that reads the scale
    itself (``guidance_embedding``) takes it as an input in one pass; any other combines two passes (CFG)."""
    if getattr(network, "guidance", None) is not None:
        return lambda x, t, y: network.velocity(x, t, y, torch.full_like(t, guidance))
    return lambda x, t, y: guided_velocity(network, x, t, y, guidance, network.num_classes)


def network_evaluations(steps: int, guidance: float, reads_guidance: bool = False) -> int:
    """Network evaluations per sample of the Euler sampler: two per step with classifier-free guidance, one
    without it or for a network that reads the guidance scale itself."""
    return steps * (1 if guidance == 1.0 or reads_guidance else 2)


def time_grid(steps: int) -> torch.Tensor:
    """steps + 1 times from 1 (noise) to 0 (data), evenly spaced."""
    return torch.linspace(1.0, 0.0, steps + 1)


@torch.inference_mode()
def euler_sample(velocity: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], noise: torch.Tensor,
                 y: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate from t = 1 (``noise`` [N, C, H, W]) to t = 0 with ``steps`` Euler steps; ``velocity(x, t [N], y)``."""
    x, grid = noise, time_grid(steps)
    for t, t_next in zip(grid[:-1].tolist(), grid[1:].tolist()):
        x = x + (t_next - t) * velocity(x, torch.full((len(x),), t, device=x.device), y)
    return x


def sample_images(denoiser, n: int, steps: int, guidance: float, seed: int, labels: torch.Tensor | None = None,
                  batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [n, C, H, W] in [-1, 1], labels [n]) drawn with Euler steps and guidance; labels uniform unless given."""
    generator = torch.Generator().manual_seed(seed)
    num_classes, shape = denoiser.num_classes, denoiser.input_shape
    if labels is None:
        labels = torch.randint(0, num_classes, (n,), generator=generator)
    noise = torch.randn((n, *shape), generator=generator)
    step = sampling_velocity(denoiser, guidance)
    out = [euler_sample(step, noise[i:i + batch_size], labels[i:i + batch_size], steps) for i in range(0, n, batch_size)]
    return torch.cat(out), labels
