"""The matching loop shared by the methods that learn synthetic pixels (dm, datadam, dc).

Every iteration draws a freshly initialised network, a mini-batch of ``real_batch`` real images of every
class from the pool, and one Siamese augmentation per class applied to that class's real and synthetic
images alike; the method's loss compares the two and one SGD step (momentum 0.5, as in the papers' code)
moves the synthetic pixels, which are then clipped to [0, 1]. Only one class mini-batch of real images is
held at a time per class, so memory does not grow with the pool. With ``flip`` (FYI, Son et al. 2024)
each synthetic image is matched together with its horizontal flip, so details that real images show on
either side need not be duplicated on both halves of one synthetic image.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from xdistill.condense.augment import sample_params, siamese_augment
from xdistill.condense.context import CondenseContext
from xdistill.condense.embedders import normalise, random_network
from xdistill.condense.registry import CondensedImages
from xdistill.progress import progress_bar

MOMENTUM = 0.5  # of the synthetic pixels' SGD
CURVE_POINTS = 50  # loss values kept in condense.json


@dataclass
class MatchBatch:
    """One round's inputs, normalised for the network: real [C * real_batch, ...] with their classes, and the
    synthetic images (with their flips under FYI) with theirs."""

    real: Tensor
    real_labels: Tensor
    synthetic: Tensor
    synthetic_labels: Tensor
    num_classes: int


# (network, batch) -> the matching loss, a scalar differentiable in batch.synthetic
MatchingLoss = Callable[[nn.Module, MatchBatch], Tensor]


def initial_images(ctx: CondenseContext) -> Tensor:
    """[C * ipc, ch, H, W] starting images: distinct random real images of each class (init=real), uniform noise,
    or a coreset of real images (init=herding or kcenter)."""
    if ctx.config.init == "noise":
        return torch.rand((ctx.num_classes * ctx.config.ipc, *ctx.input_shape), generator=ctx.generator(1))
    if ctx.config.init in ("herding", "kcenter"):
        from xdistill.condense.coreset import coreset, herding, k_center

        return torch.as_tensor(coreset(ctx, herding if ctx.config.init == "herding" else k_center).x)
    rng = ctx.rng(1)
    positions = np.concatenate([ctx.pool.sample(c, ctx.config.ipc, rng) for c in range(ctx.num_classes)])
    return ctx.pool.images(positions)


def network_seed(seed: int, iteration: int) -> int:
    return zlib.crc32(f"condense-network/{seed}/{iteration}".encode())


def run_matching(ctx: CondenseContext, loss: MatchingLoss, iterations: int, lr: float, description: str,
                 rounds: int = 1, between_rounds: Callable[[nn.Module, Tensor, Tensor], None] | None = None,
                 frozen_network: bool = True) -> CondensedImages:
    """Learn the synthetic images: ``iterations`` networks, ``rounds`` matching steps on each (with
    ``between_rounds(network, synthetic, labels)`` after each, e.g. to train the network), as the module says."""
    cfg, pool, classes = ctx.config, ctx.pool, ctx.num_classes
    synthetic = initial_images(ctx).requires_grad_(True)
    labels = torch.as_tensor(ctx.class_major_labels())
    optimiser = torch.optim.SGD([synthetic], lr=lr, momentum=MOMENTUM)
    rng, generator = ctx.rng(2), ctx.generator(3)
    real_labels = torch.arange(classes).repeat_interleave(cfg.real_batch)
    synthetic_labels = torch.cat([labels, labels]) if cfg.flip else labels
    curve: list[float] = []
    started = time.perf_counter()
    bar = progress_bar(iterations * rounds, desc=f"condense {description}", unit="step", disable=not cfg.progress)
    for iteration in range(iterations):
        network = random_network(cfg.embedder, ctx.input_shape, classes, cfg.embedder_width,
                                 network_seed(cfg.seed, iteration)).to(cfg.device)
        if frozen_network:
            network.requires_grad_(False)
        for _ in range(rounds):
            positions = np.concatenate([pool.sample(c, cfg.real_batch, rng) for c in range(classes)])
            real = pool.images(positions)
            shown = torch.cat([synthetic, synthetic.flip(-1)]) if cfg.flip else synthetic
            if cfg.augment:
                params = sample_params(classes, generator)
                with torch.no_grad():
                    real = siamese_augment(real, params, real_labels)
                shown = siamese_augment(shown, params, synthetic_labels)
            batch = MatchBatch(normalise(real).to(cfg.device), real_labels.to(cfg.device),
                               normalise(shown).to(cfg.device), synthetic_labels.to(cfg.device), classes)
            value = loss(network, batch)
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            with torch.no_grad():
                synthetic.clamp_(0.0, 1.0)
            curve.append(float(value.detach()))
            if between_rounds is not None:
                between_rounds(network, synthetic.detach(), labels)
            bar.update(1)
            bar.set_postfix(loss=f"{curve[-1]:.4g}")
    bar.close()
    keep = np.unique(np.linspace(0, len(curve) - 1, min(CURVE_POINTS, len(curve))).round().astype(int))
    record = {"iterations": iterations, "rounds_per_network": rounds, "lr_images": lr,
              "loss_first": curve[0], "loss_last": curve[-1], "loss_curve": [[int(i), curve[i]] for i in keep],
              "matching_seconds": time.perf_counter() - started}
    return CondensedImages(synthetic.detach().cpu().numpy().astype(np.float32), labels.numpy(), record)


def class_means(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """[N, D] features, [N] labels -> [num_classes, D] per-class means."""
    sums = torch.zeros((num_classes, features.shape[1]), dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).to(features.dtype)
    return sums / counts[:, None]
