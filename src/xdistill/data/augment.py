"""Image augmentations for consistency training and cached augmented views.

Every random choice is drawn per sample from a generator seeded by
``(seed, view)`` for the whole split at once, so view ``v`` of sample ``i`` is
the same image whatever the batch size or the order of computation: a cached
teacher output on view ``v`` matches the student's input on that view.

- ``weak``: a random translation of up to 1/8 of the image side (reflect padding).
- ``strong``: RandAugment-style: translation, rotation, shear, scale, contrast
  and brightness jitter, then a random square cut-out (as in FixMatch).
Horizontal flips are left out by default: they change the meaning of digits and
text; pass ``flip=True`` for natural images.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentParams:
    """Per-sample parameters for n samples (arrays of length n)."""

    tx: np.ndarray
    ty: np.ndarray
    angle: np.ndarray
    shear: np.ndarray
    scale: np.ndarray
    contrast: np.ndarray
    brightness: np.ndarray
    cut_x: np.ndarray
    cut_y: np.ndarray
    cut_size: np.ndarray
    flip: np.ndarray

    def take(self, index: np.ndarray | slice) -> "AugmentParams":
        return AugmentParams(**{k: v[index] for k, v in self.__dict__.items()})


def sample_params(n: int, strength: str, seed: int, view: int = 0, flip: bool = False) -> AugmentParams:
    """Draw augmentation parameters for ``n`` samples; ``strength`` is 'weak' or 'strong'."""
    rng = np.random.default_rng([seed, view, 0 if strength == "weak" else 1])
    shift = 0.125
    tx = rng.uniform(-shift, shift, n)
    ty = rng.uniform(-shift, shift, n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, dtype=bool)
    if strength == "weak":
        zeros, ones = np.zeros(n), np.ones(n)
        return AugmentParams(tx, ty, zeros, zeros, ones, ones, zeros, zeros, zeros, zeros, flips)
    return AugmentParams(
        tx=tx, ty=ty,
        angle=rng.uniform(-30, 30, n),
        shear=rng.uniform(-0.3, 0.3, n),
        scale=rng.uniform(0.85, 1.15, n),
        contrast=rng.uniform(0.5, 1.5, n),
        brightness=rng.uniform(-0.25, 0.25, n),
        cut_x=rng.random(n), cut_y=rng.random(n),
        cut_size=rng.uniform(0.2, 0.5, n),
        flip=flips,
    )


def apply_augment(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Augment float images [N, C, H, W] in [0, 1]; returns [N, C, H, W] in [0, 1]."""
    n, _, h, w = images.shape
    dtype = images.dtype
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype)

    angle = t(params.angle) * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    inv_scale = 1.0 / t(params.scale)
    shear = t(params.shear)
    flip = torch.where(torch.as_tensor(params.flip), -1.0, 1.0).to(dtype)
    theta = torch.zeros(n, 2, 3, dtype=dtype)
    theta[:, 0, 0] = (cos + shear * sin) * inv_scale * flip
    theta[:, 0, 1] = (-sin + shear * cos) * inv_scale
    theta[:, 1, 0] = sin * inv_scale * flip
    theta[:, 1, 1] = cos * inv_scale
    theta[:, 0, 2] = t(params.tx) * 2
    theta[:, 1, 2] = t(params.ty) * 2
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    contrast = t(params.contrast).view(n, 1, 1, 1)
    brightness = t(params.brightness).view(n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * contrast + mean + brightness).clamp(0, 1)
    if params.cut_size.any():
        ys = torch.arange(h, dtype=dtype).view(1, h, 1)
        xs = torch.arange(w, dtype=dtype).view(1, 1, w)
        half = (t(params.cut_size) * min(h, w) / 2).view(n, 1, 1)
        cy = (t(params.cut_y) * h).view(n, 1, 1)
        cx = (t(params.cut_x) * w).view(n, 1, 1)
        hole = ((ys - cy).abs() < half) & ((xs - cx).abs() < half)
        out = out.masked_fill(hole.unsqueeze(1), 0.5)
    return out


@functools.lru_cache(maxsize=16)
def _split_params(total: int, strength: str, seed: int, view: int, flip: bool) -> AugmentParams:
    """Parameters for a whole split, drawn once and shared by every batch of it (read-only)."""
    params = sample_params(total, strength, seed, view, flip)
    for array in params.__dict__.values():
        array.setflags(write=False)
    return params


def augment(images: torch.Tensor, strength: str, seed: int, view: int = 0,
            indices: np.ndarray | None = None, total: int | None = None, flip: bool = False) -> torch.Tensor:
    """Augment a batch; ``indices`` are the samples' positions in a split of size ``total``."""
    n = images.shape[0]
    if indices is None:
        return apply_augment(images, sample_params(n, strength, seed, view, flip))
    params = _split_params(int(total if total is not None else indices.max() + 1), strength, seed, view, flip)
    return apply_augment(images, params.take(np.asarray(indices)))
