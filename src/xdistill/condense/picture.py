"""A picture of a condensed set: one row per class, one column per image, as a PNG."""

from __future__ import annotations

import io

import numpy as np

GAP = 2  # pixels between images
MIN_CELL = 56  # images are enlarged (nearest neighbour) to at least this many pixels a side


def condensed_grid_png(x: np.ndarray, y: np.ndarray, num_classes: int) -> bytes:
    """x [N, C, H, W] in [0, 1] (C = 1 or 3), y [N] -> PNG bytes of a classes x images-per-class grid."""
    from PIL import Image

    height, width = x.shape[2:]
    zoom = max(1, -(-MIN_CELL // max(height, width)))
    cell_h, cell_w = height * zoom, width * zoom
    per_class = [np.flatnonzero(y == c) for c in range(num_classes)]
    columns = max(1, max(len(p) for p in per_class))
    canvas = np.full((num_classes * (cell_h + GAP) + GAP, columns * (cell_w + GAP) + GAP, 3), 255, dtype=np.uint8)
    for c, members in enumerate(per_class):
        for j, i in enumerate(members):
            image = np.clip(x[i], 0, 1)
            image = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
            pixels = (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)
            pixels = pixels.repeat(zoom, axis=0).repeat(zoom, axis=1)
            top, left = GAP + c * (cell_h + GAP), GAP + j * (cell_w + GAP)
            canvas[top:top + cell_h, left:left + cell_w] = pixels
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return buffer.getvalue()
