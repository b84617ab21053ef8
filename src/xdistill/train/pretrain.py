"""A generic pretrained student: a student family trained with plain
cross-entropy on a broad labelled pool (a labeled task folder, an image folder,
or for the demo world the union of its source domains), the analogue of an
ImageNet initialisation. ``finetune`` starts from it with a fresh
classification head, and every method may start from it with ``init=FILE``.

    xdistill pretrain --images photos/ --student cnn --out generic.safetensors
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as save_safetensors


from xdistill.config import ensure_valid
from xdistill.data.task import Split
from xdistill.errors import XDistillError
from xdistill.io import atomic_write_bytes
from xdistill.progress import progress_bar
from xdistill.runtime import Runtime
from xdistill.students import build_student
from xdistill.train.config import DEFAULT_STUDENTS, PretrainConfig
from xdistill.train.inputs import StudentInputs
from xdistill.train.loop import cosine_lr

def pretraining_data(config: PretrainConfig) -> tuple[Split, str, list[str]]:
    """The labeled pool (a task's labeled split, or an image folder with one sub-folder per class),
    its input kind and its class names."""
    from xdistill.data.splits import load_split_file
    from xdistill.data.task import load_task

    if config.task:
        task = load_task(config.task)
        if task.input == "text":
            raise XDistillError(
                f"Task '{task.name}' holds text: a text student's vocabulary is fitted on each target task, so a "
                "generic text student cannot be carried over. Pretrain an image or feature student instead."
            )
        return task.labeled, task.input, list(task.classes)
    folder = Path(config.images)
    if not folder.is_dir():
        raise XDistillError(f"--images '{folder}' is not a folder. Give a folder with one sub-folder of images per class.")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise XDistillError(f"--images '{folder}' needs at least 2 class sub-folders. Found {classes or 'none'}.")
    x, y = load_split_file(folder, "labeled", "image", classes)
    return Split("labeled", x, y), "image", classes


def pretrain(config: PretrainConfig, runtime: Runtime | None = None) -> Path:
    """``xdistill pretrain``: read the pool, train the student, write its weights to ``config.out``."""
    ensure_valid(config, "pretrain config")
    split, input_kind, classes = pretraining_data(config)
    return pretrain_student(config, split, input_kind, runtime)


def pretrain_student(config: PretrainConfig, split: Split, input_kind: str, runtime: Runtime | None = None) -> Path:
    """Train ``config.student`` on ``split`` (x with labels y) and save it atomically as safetensors,
    with the family, knobs and input shape in the file's metadata (``config``'s data keys are not used)."""
    runtime = runtime or Runtime()
    if split.y is None or len(split) == 0:
        raise XDistillError("Generic pretraining needs labeled samples. Got none.")
    name = config.student.name or DEFAULT_STUDENTS[input_kind]
    inputs = StudentInputs(input_kind)
    torch.manual_seed(config.seed)
    model = build_student(name, split.input_shape, int(split.y.max()) + 1, **config.student.knobs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=5e-4)
    labels = torch.as_tensor(split.y, dtype=torch.long)
    steps = math.ceil(len(split) / config.batch_size)
    total = steps * config.epochs
    bar = progress_bar(total=total, desc="pretrain", unit="step", leave=False, disable=not config.progress)
    model.train()
    for epoch in range(config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(len(split))
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(config.lr, epoch * steps + step, total, 0)
            idx = order[step * config.batch_size:(step + 1) * config.batch_size]
            x = inputs.augmented(split, idx, "weak", config.seed * 7919 + epoch * steps + step)
            loss = F.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"student": name, "knobs": json.dumps(config.student.knobs), "input_shape": json.dumps(split.input_shape)}
    out = Path(config.out)
    atomic_write_bytes(out, save_safetensors(state, metadata=meta))
    if runtime.info is not None:
        runtime.info(f"pretrained a generic {name} student on {len(split)} samples ({config.epochs} epochs) -> {out}")
    return out
