"""Sample grids as PNG files (rows of images side by side, a one-pixel gap), for run folders and reports."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from xdistill.io import atomic_write_bytes


def grid_array(rows: list[torch.Tensor], scale: int = 2) -> np.ndarray:
    """uint8 image [H, W] or [H, W, 3] of rows of model-space images [n, C, h, w] (a short row is padded)."""
    rows = [r for r in rows if len(r)]
    if not rows:
        return np.zeros((1, 1), dtype=np.uint8)
    c, h, w = rows[0].shape[1:]
    width = max(len(r) for r in rows)
    canvas = np.full(((h + 1) * len(rows) + 1, (w + 1) * width + 1, c), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        images = ((row.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        for j, image in enumerate(images):
            canvas[1 + i * (h + 1):1 + i * (h + 1) + h, 1 + j * (w + 1):1 + j * (w + 1) + w] = image
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    return canvas[..., 0] if c == 1 else canvas


def write_grid(path: Path, rows: list[torch.Tensor], scale: int = 2) -> Path:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grid_array(rows, scale)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
