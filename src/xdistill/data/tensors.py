"""Conversions from a task's raw inputs to float tensors."""

from __future__ import annotations

import numpy as np
import torch


def images_to_tensor(x: np.ndarray) -> torch.Tensor:
    """Raw images -> float32 tensor [N, C, H, W] with values in [0, 1].

    ``x`` is uint8 (0..255) or float (already in [0, 1]), shaped [N, H, W]
    (one channel) or [N, H, W, C].
    """
    arr = np.asarray(x)
    if arr.ndim == 3:
        arr = arr[:, :, :, None]
    if not arr.flags.writeable:  # rows of a read-only memory map: a tensor must never write through to the file
        arr = np.array(arr)
    tensor = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    if arr.dtype == np.uint8:
        return tensor.float().div_(255.0)
    return tensor.float()
