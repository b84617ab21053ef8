"""Checks shared by teacher kinds: do outputs match what the zoo declared?"""

from __future__ import annotations

from typing import Any

import torch

from xdistill.errors import XDistillError
from xdistill.teachers.base import TeacherOutput


def split_model_output(out: Any, teacher: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A model's ``(features, logits)`` tuple or ``{"features", "logits"}`` dict -> the two tensors."""
    if isinstance(out, dict):
        unknown = set(out) - {"features", "logits"}
        if unknown or not out:
            raise XDistillError(
                f"Teacher '{teacher}' returned a dict with keys {sorted(out)}; expected 'features' and/or 'logits'."
            )
        return out.get("features"), out.get("logits")
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise XDistillError(f"Teacher '{teacher}' returned a tuple of {len(out)} items; expected (features, logits).")
        return out[0], out[1]
    if isinstance(out, torch.Tensor):
        raise XDistillError(
            f"Teacher '{teacher}' returned a single tensor {tuple(out.shape)}; expected a (features, logits) tuple "
            "or a dict with those keys. For an in-process module, name its feature layer with 'feature_layer'."
        )
    raise XDistillError(f"Teacher '{teacher}' returned {type(out).__name__}; expected a (features, logits) tuple.")


def checked_output(features: torch.Tensor | None, logits: torch.Tensor | None, n: int, labels: list[str] | None,
                   teacher: str) -> TeacherOutput:
    """Flatten features to [N, D], cast to float32 and check shapes against the declaration."""
    if features is None and logits is None:
        raise XDistillError(f"Teacher '{teacher}' returned neither features nor logits.")
    if features is not None:
        features = features.detach().float().reshape(features.shape[0], -1) if features.ndim != 2 else features.detach().float()
        if features.shape[0] != n:
            raise XDistillError(f"Teacher '{teacher}' returned features for {features.shape[0]} samples; the batch had {n}.")
    if logits is not None:
        logits = logits.detach().float()
        if logits.ndim != 2 or logits.shape[0] != n:
            raise XDistillError(f"Teacher '{teacher}' returned logits of shape {tuple(logits.shape)}; expected [{n}, C].")
        if labels is not None and logits.shape[1] != len(labels):
            raise XDistillError(
                f"Teacher '{teacher}' returned {logits.shape[1]} logits per sample but its zoo entry declares "
                f"{len(labels)} labels. Fix 'labels' in the zoo file."
            )
    elif labels is not None and features is not None:
        pass  # a declared label space without logits: treated as a features-only teacher
    return TeacherOutput(features=features, logits=logits)
