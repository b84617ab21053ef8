"""The teacher interface: anything that maps a batch of target inputs to
features and, when it has them, logits over its own label names.

A teacher kind is registered in :data:`TEACHER_KINDS` with the dataclass of
its zoo-YAML options and a builder. There is no base class to inherit:

    class MyTeacher:
        name: str; labels: list[str] | None; modality: str
        def setup(self) -> None: ...                  # load weights, probe shapes
        def fingerprint(self) -> str: ...             # weights hash + preprocessing
        def outputs(self, batch) -> TeacherOutput: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from xdistill.registry import Registry


@dataclass(frozen=True)
class InputSpec:
    """What a teacher expects after its own preprocessing of raw task images."""

    size: tuple[int, int] | None = None  # (H, W) to resize to; None keeps the task's size
    channels: int | None = None  # 1 or 3; None keeps the task's channels
    mean: tuple[float, ...] = (0.0,)  # per-channel mean subtracted after scaling to [0, 1]
    std: tuple[float, ...] = (1.0,)  # per-channel std divided by (> 0)

    def problems(self) -> list[str]:
        problems = []
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            problems.append(f"'input.size' must be [H, W] with positive integers. Got {list(self.size)}.")
        if self.channels is not None and self.channels not in (1, 3):
            problems.append(f"'input.channels' must be 1 or 3. Got {self.channels}.")
        # NaN passes '<= 0' unnoticed, and a NaN or inf here turns every teacher output into NaN.
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            problems.append(f"'input.std' values must be finite numbers > 0. Got {list(self.std)}.")
        if not all(math.isfinite(m) for m in self.mean):
            problems.append(f"'input.mean' values must be finite numbers. Got {list(self.mean)}.")
        if self.channels is not None:
            for key in ("mean", "std"):
                values = getattr(self, key)
                if len(values) not in (1, self.channels):
                    problems.append(f"'input.{key}' must have 1 or {self.channels} values. Got {list(values)}.")
        return problems


class TeacherOutput:
    """A record of named tensors, each with the batch as its first axis; the task kind defines the
    names and shapes (classification: ``features`` [N, D] float32 and, when the teacher has them,
    ``logits`` [N, C_teacher] float32). The cache stores every tensor under its name."""

    def __init__(self, features: torch.Tensor | None = None, logits: torch.Tensor | None = None,
                 **tensors: torch.Tensor | None) -> None:
        named = {"features": features, "logits": logits, **tensors}
        self.tensors: dict[str, torch.Tensor] = {k: v for k, v in named.items() if v is not None}

    @property
    def features(self) -> torch.Tensor | None:
        return self.tensors.get("features")

    @property
    def logits(self) -> torch.Tensor | None:
        return self.tensors.get("logits")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={list(v.shape)}" for k, v in self.tensors.items())
        return f"TeacherOutput({shapes})"


@dataclass
class TeacherSpec:
    """One zoo entry: the fields every teacher kind shares, plus kind options."""

    name: str
    kind: str
    labels: list[str] | None = None  # the teacher's own label names, in logit order
    input: InputSpec = field(default_factory=InputSpec)
    domain: str = ""  # free text: the source domain it was trained on
    architecture: str = ""  # free text: cnn, mlp, vit, bert, ...
    modality: str = "image"  # image | features | text
    options: Any = None  # the kind's options dataclass
    base_dir: Path = Path(".")  # relative paths in options resolve against this


@runtime_checkable
class Teacher(Protocol):
    name: str
    labels: list[str] | None
    modality: str

    def setup(self) -> None: ...

    def fingerprint(self) -> str: ...

    def outputs(self, batch: np.ndarray) -> TeacherOutput: ...


@dataclass(frozen=True)
class TeacherKind:
    """How to build teachers of one kind from a zoo entry."""

    options: type  # dataclass of the kind-specific YAML keys
    build: Callable[[TeacherSpec], Teacher]
    modalities: tuple[str, ...] = ("image",)


TEACHER_KINDS: Registry[TeacherKind] = Registry("teacher kind")


def create_teacher(spec: TeacherSpec) -> Teacher:
    """Build (but do not load) the teacher a zoo entry describes."""
    return TEACHER_KINDS.get(spec.kind).build(spec)
