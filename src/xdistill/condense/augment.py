"""Differentiable Siamese augmentation (Zhao & Bilen 2021, "Dataset Condensation with Differentiable
Siamese Augmentation").

Each group of images (in matching: one class's real and synthetic batches) draws one transformation,
as in the paper's default single-transform mode: colour (brightness, saturation, contrast), crop
(translation by up to 1/8 of the size), cutout (a zeroed square of half the size), scale (x0.83-1.2
per axis) or rotation (up to 15 degrees). The same parameters are applied to the real and the
synthetic images of a group (Siamese), and every operation is differentiable in the pixels, so the
matching loss's gradient reaches the synthetic images through it. Horizontal flipping is left out:
the demo's digits are not mirror-symmetric; FYI's flipping is a matching option (``flip``).

Images are [N, C, H, W] in [0, 1]; the result may leave [0, 1] slightly (brightness) and is not clamped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

TRANSFORMS = ("color", "crop", "cutout", "scale", "rotate")
BRIGHTNESS = 0.25  # +- added to [0, 1] pixels (the paper's +-0.5 on images normalised with std ~0.5)
SATURATION = 2.0  # colour images: saturation scaled by U(0, 2)
CONTRAST = 0.5  # contrast scaled by U(1 - 0.5, 1 + 0.5)
CROP = 0.125  # translation up to this share of the size
CUTOUT = 0.5  # side of the zeroed square, as a share of the size
SCALE = 1.2  # each axis scaled by U(1/1.2, 1.2)
ROTATE_DEGREES = 15.0


@dataclass
class AugmentParams:
    """One transformation per group: which (``transform`` [G], an index into TRANSFORMS) and its parameters
    (each [G]); parameters of the transformations a group did not draw are the identity."""

    transform: Tensor
    brightness: Tensor
    saturation: Tensor
    contrast: Tensor
    shift: Tensor  # [G, 2] in units of the image size (x, y)
    cut_centre: Tensor  # [G, 2] in [0, 1] (x, y)
    scale: Tensor  # [G, 2]
    angle: Tensor  # [G] radians


def sample_params(groups: int, generator: torch.Generator) -> AugmentParams:
    """Draw one transformation and its parameters for each of ``groups`` groups."""
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    transform = torch.randint(0, len(TRANSFORMS), (groups,), generator=generator)
    drawn = {name: transform == i for i, name in enumerate(TRANSFORMS)}
    color = drawn["color"]
    brightness = torch.where(color, (u(groups) - 0.5) * 2 * BRIGHTNESS, torch.zeros(groups))
    saturation = torch.where(color, u(groups) * SATURATION, torch.ones(groups))
    contrast = torch.where(color, 1 + (u(groups) - 0.5) * 2 * CONTRAST, torch.ones(groups))
    shift = torch.where(drawn["crop"][:, None], (u(groups, 2) - 0.5) * 2 * CROP, torch.zeros(groups, 2))
    cut_centre = u(groups, 2)
    scale = torch.where(drawn["scale"][:, None], torch.exp((u(groups, 2) - 0.5) * 2 * math.log(SCALE)),
                        torch.ones(groups, 2))
    angle = torch.where(drawn["rotate"], (u(groups) - 0.5) * 2 * math.radians(ROTATE_DEGREES), torch.zeros(groups))
    return AugmentParams(transform, brightness, saturation, contrast, shift, cut_centre, scale, angle)


def siamese_augment(images: Tensor, params: AugmentParams, group: Tensor) -> Tensor:
    """images [N, C, H, W], group [N] (long, each image's group) -> augmented images [N, C, H, W]."""
    n, channels, height, width = images.shape
    x = images
    # colour: brightness, saturation (colour images), contrast
    x = x + params.brightness[group].view(n, 1, 1, 1).to(x)
    if channels == 3:
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * params.saturation[group].view(n, 1, 1, 1).to(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * params.contrast[group].view(n, 1, 1, 1).to(x)
    # crop, scale and rotation as one affine resampling (identity where the group drew none of them)
    geometric = torch.isin(params.transform, torch.tensor([1, 3, 4]))[group]
    if bool(geometric.any()):
        angle, scale, shift = params.angle[group], params.scale[group], params.shift[group]
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([
            torch.stack([cos * scale[:, 0], -sin * scale[:, 1], shift[:, 0] * 2], dim=1),
            torch.stack([sin * scale[:, 0], cos * scale[:, 1], shift[:, 1] * 2], dim=1),
        ], dim=1).to(x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = torch.where(geometric.view(n, 1, 1, 1).to(x.device),
                        F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False), x)
    # cutout
    cut = (params.transform == TRANSFORMS.index("cutout"))[group]
    if bool(cut.any()):
        ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
        centre = params.cut_centre[group]
        inside_y = (ys[None, :] - centre[:, 1:2]).abs() < CUTOUT / 2  # [N, H]
        inside_x = (xs[None, :] - centre[:, 0:1]).abs() < CUTOUT / 2  # [N, W]
        hole = (inside_y[:, :, None] & inside_x[:, None, :]) & cut[:, None, None]
        x = x * (~hole).unsqueeze(1).to(x)
    return x
