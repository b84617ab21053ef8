"""Training a class-conditional velocity network by flow matching on images: the demo teacher, and the
generation kind's ``supervised`` reference.

Each step draws a batch of training images, a time t ~ U(0, 1) and Gaussian noise per image, replaces the
label by the null class with probability ``label_dropout`` (so that one network gives both terms of
classifier-free guidance) and regresses the velocity ``eps - x_0`` (``flow.py``) with mean squared error.
An exponential moving average of the weights is what gets saved. With a ``checkpoint`` path, the state
(weights, average, optimizer, RNG) is written atomically every ``checkpoint_every`` steps and a rerun
continues from it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from xdistill.kinds.generation.flow import noisy, velocity_target
from xdistill.train.checkpoint import load_checkpoint, save_checkpoint


def flow_matching_loss(network, x0: torch.Tensor, y: torch.Tensor, label_dropout: float = 0.0) -> torch.Tensor:
    """Mean squared velocity error of ``network`` on images x0 [N, C, H, W] with labels y [N]."""
    noise = torch.randn_like(x0)
    t = torch.rand(len(x0))
    if label_dropout > 0:
        y = torch.where(torch.rand(len(y)) < label_dropout, torch.full_like(y, network.num_classes), y)
    return F.mse_loss(network.velocity(noisy(x0, noise, t), t, y), velocity_target(x0, noise))


@torch.no_grad()
def update_average(average: nn.Module, network: nn.Module, decay: float) -> None:
    for a, p in zip(average.parameters(), network.parameters()):
        a.lerp_(p, 1.0 - decay)


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_velocity_network(network: nn.Module, x0: torch.Tensor, y: torch.Tensor, iterations: int,
                           batch_size: int = 128, lr: float = 2e-3, label_dropout: float = 0.1,
                           ema_decay: float = 0.999, seed: int = 0, checkpoint: Path | None = None,
                           checkpoint_every: int = 200, log: Callable[[str], None] | None = None) -> nn.Module:
    """Train ``network`` (images x0 [N, C, H, W] in [-1, 1], labels y [N]); returns the weight average."""
    torch.manual_seed(seed)
    average = copy.deepcopy(network).requires_grad_(False)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=0.0)
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        start = load_checkpoint(Path(checkpoint), {"network": network, "average": average}, optimizer)["step"]
        if log:
            log(f"resuming flow-matching training at step {start} of {iterations}")
    network.train()
    started, losses = time.perf_counter(), []
    for step in range(start, iterations):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, iterations, lr, min(200, iterations // 10 + 1))
        index = torch.randint(0, len(x0), (batch_size,))
        loss = flow_matching_loss(network, x0[index], y[index], label_dropout)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        update_average(average, network, ema_decay if step >= 100 else 0.0)
        losses.append(loss.item())
        done = step + 1
        if checkpoint is not None and (done % checkpoint_every == 0 or done == iterations):
            save_checkpoint(Path(checkpoint), {"network": network, "average": average}, optimizer, {"step": done})
        if log and (done % 200 == 0 or done == iterations):
            recent = sum(losses[-200:]) / len(losses[-200:])
            log(f"flow matching step {done}/{iterations}: loss {recent:.4f} ({time.perf_counter() - started:.0f} s)")
    return average.eval()
