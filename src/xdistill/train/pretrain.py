"""A generic pretrained student: the same student family trained with plain
cross-entropy on a broad labelled pool (for the demo world: the union of the
source domains), the analogue of an ImageNet initialisation. ``finetune``
starts from it with a fresh classification head."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from xdistill.progress import progress_bar

from xdistill.data.augment import augment
from xdistill.data.tensors import images_to_tensor
from xdistill.errors import XDistillError
from xdistill.io import atomic_write
from xdistill.students import build_student
from xdistill.train.config import StudentConfig
from xdistill.train.inputs import IMAGE_MEAN, IMAGE_STD


def pretrain_generic(student: StudentConfig, images: np.ndarray, labels: np.ndarray, out_path: str | Path,
                     epochs: int = 3, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
                     progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Train ``student`` on (images [N, H, W(, C)], labels [N]) and save its weights as safetensors."""
    from safetensors.torch import save_file

    if len(images) != len(labels) or len(images) == 0:
        raise XDistillError(f"Generic pretraining needs as many labels as images. Got {len(images)} and {len(labels)}.")
    num_classes = int(labels.max()) + 1
    x_all = images_to_tensor(images)
    torch.manual_seed(seed)
    model = build_student(student.name, tuple(x_all.shape[1:]), num_classes, **student.knobs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    steps = math.ceil(len(x_all) / batch_size)
    total = steps * epochs
    bar = progress_bar(total=total, desc="generic pretraining", unit="step", leave=False, disable=not progress)
    model.train()
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(x_all))
        for step in range(steps):
            t = epoch * steps + step
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * t / total))
            idx = order[step * batch_size:(step + 1) * batch_size]
            x = augment(x_all[idx], "weak", seed * 7919 + t)
            loss = F.cross_entropy(model((x - IMAGE_MEAN) / IMAGE_STD), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    out_path = Path(out_path)
    atomic_write(out_path, lambda tmp: save_file(state, str(tmp), metadata={"student": student.name}))
    if log is not None:
        log(f"pretrained a generic {student.name} student on {len(x_all)} images ({epochs} epochs) -> {out_path.name}")
    return out_path
