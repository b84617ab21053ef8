"""Saved students: ``student.safetensors`` (weights) plus ``student.json``
(architecture, label names, preprocessing, the resolved config)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.io import atomic_write, atomic_write_json, load_weights, read_safetensors
from xdistill.students.dual_head import DUAL_HEAD, DualHead

WEIGHTS_NAME = "student.safetensors"
META_NAME = "student.json"


def save_student(folder: str | Path, student: nn.Module, meta: dict[str, Any]) -> Path:
    """Write the student's weights and description atomically into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(state, str(tmp), metadata={"format": "xdistill-student-1"}))
    atomic_write_json(folder / META_NAME, meta)
    return folder


def load_student(folder: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved student (registered families only) and load its weights."""
    from xdistill.students import build_student

    folder = Path(folder)
    meta_path, weights_path = folder / META_NAME, folder / WEIGHTS_NAME
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise XDistillError(f"'{folder}' holds no saved student ({path.name} is missing). Give the --out folder of a distill run.")
    try:
        meta = json.loads(meta_path.read_text())
        arch = meta["architecture"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise XDistillError(f"'{meta_path}' is not a valid student description ({exc}).") from exc
    extra = {"vocab_size": meta["preprocessing"]["vocab_size"]} if "vocab_size" in meta.get("preprocessing", {}) and \
        "vocab_size" not in arch.get("knobs", {}) and arch["name"].startswith("text") else {}
    student = build_student(arch["name"], tuple(arch["input_shape"]), int(arch["num_classes"]), **arch.get("knobs", {}), **extra)
    if meta.get("head") == DUAL_HEAD:  # a dual-head student (method dho): its two heads and their mixing weight
        student.head = DualHead.beside(student.head)
    state = read_safetensors(weights_path, "Student weights", "Distill the student again.")
    load_weights(student, state, f"Student weights '{weights_path}'", f"the student described in '{meta_path}'")
    student.eval()
    return student, meta


def adapt_state_dict(state: dict[str, torch.Tensor], student: nn.Module) -> dict[str, torch.Tensor]:
    """Fit a generic pretrained student's weights to ``student``: a first convolution
    with other input channels is summed (3 -> 1) or spread (1 -> 3) over channels, and
    the classification head is left at its fresh initialisation (a new label space)."""
    own = student.state_dict()
    head_keys = {f"head.{k}" for k in student.head.state_dict()}
    adapted = {}
    for key, value in state.items():
        if key in head_keys or key not in own:
            continue
        target = own[key]
        if value.shape != target.shape and value.ndim == 4 and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
            if target.shape[1] == 1:
                value = value.sum(dim=1, keepdim=True)
            else:
                value = value.mean(dim=1, keepdim=True).repeat(1, target.shape[1], 1, 1) * (value.shape[1] / target.shape[1])
        if value.shape != target.shape:
            raise XDistillError(
                f"The pretrained weight '{key}' has shape {tuple(value.shape)} but this student needs {tuple(target.shape)}. "
                "Pretrain the same student family with the same knobs."
            )
        adapted[key] = value
    return {**own, **adapted}
