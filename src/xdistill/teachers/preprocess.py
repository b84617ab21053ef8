"""A teacher's own preprocessing of raw task images: channel conversion,
resizing and normalisation, as its :class:`InputSpec` declares."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xdistill.data.tensors import images_to_tensor
from xdistill.teachers.base import InputSpec

# ITU-R BT.601 luma weights, the usual RGB -> grey conversion.
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """[N, C, H, W] -> [N, channels, H, W]; drops an alpha channel first."""
    if images.shape[1] == 4:
        images = images[:, :3]
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 1:
        return (images * _LUMA.to(images)).sum(dim=1, keepdim=True)
    return images.expand(-1, 3, -1, -1)


def resize(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    if size is None or tuple(images.shape[-2:]) == tuple(size):
        return images
    shrinking = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrinking)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    c = images.shape[1]
    m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1).expand(1, c, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1).expand(1, c, 1, 1)
    return (images - m) / s


def preprocess_images(batch: np.ndarray | torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Raw images (uint8/float N×H×W[×C], or a float tensor [N, C, H, W] in [0, 1]) -> model input."""
    images = batch if isinstance(batch, torch.Tensor) else images_to_tensor(batch)
    images = convert_channels(images, spec.channels)
    images = resize(images, spec.size)
    return normalize(images, spec.mean, spec.std).contiguous()
