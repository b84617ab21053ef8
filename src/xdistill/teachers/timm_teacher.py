"""timm image teachers: any architecture ``timm.create_model`` knows, with
weights from a local checkpoint (nothing is downloaded).

    - name: convnext-nano
      kind: timm
      model: convnext_nano         # timm's architecture name ('name' is the teacher's own)
      pretrained: true
      checkpoint: weights/convnext_nano.safetensors
      input: {size: [224, 224], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}

Without ``feature_layer`` the features are timm's pooled pre-logits
(``forward_head(forward_features(x), pre_logits=True)``) and the logits its
classifier's output; with it, a forward hook on that module gives the features.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.io import load_weights, read_safetensors, sha256_file
from xdistill.teachers._outputs import checked_output
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherOutput, TeacherSpec
from xdistill.teachers.module import ModuleTeacher, state_dict_digest
from xdistill.teachers.preprocess import preprocess_images

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass
class TimmOptions:
    model: str  # timm architecture name, e.g. resnet18 (see timm.list_models())
    pretrained: bool = False  # use trained weights; they must come from 'checkpoint'
    checkpoint: str | None = None  # local .safetensors or .pth state dict, relative to the zoo file
    feature_layer: str | None = None  # module path whose output is the features; default timm's pre-logits
    num_classes: int | None = None  # classifier size; None keeps the architecture's default (or the checkpoint's)
    kwargs: dict[str, Any] = field(default_factory=dict)  # further keyword arguments for timm.create_model

    def problems(self) -> list[str]:
        problems = []
        if self.pretrained and not self.checkpoint:
            problems.append(
                f"'pretrained: true' needs a local 'checkpoint' file for '{self.model}': xdistill never downloads "
                "weights. Save them once (e.g. timm.create_model(name, pretrained=True) then "
                "safetensors.torch.save_file(model.state_dict(), 'name.safetensors')) and set 'checkpoint'."
            )
        if self.checkpoint and not self.checkpoint.endswith(CHECKPOINT_SUFFIXES):
            problems.append(f"'checkpoint' must be a {', '.join(CHECKPOINT_SUFFIXES)} file. Got {self.checkpoint!r}.")
        return problems


def import_timm():
    try:
        import timm
    except ImportError as exc:
        raise XDistillError(
            "timm teachers need the timm package. Install it with: pip install 'xdistill[timm]'."
        ) from exc
    return timm


def load_checkpoint(path, teacher: str) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file, or a .pth file read with ``weights_only=True`` (no code runs)."""
    if str(path).endswith(".safetensors"):
        return read_safetensors(path, f"Teacher '{teacher}': checkpoint")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises UnpicklingError, RuntimeError, ... for foreign files
        raise XDistillError(
            f"Teacher '{teacher}': cannot read '{path}' as a weights-only checkpoint ({str(exc).splitlines()[0]}). "
            "Save a plain state dict with torch.save(model.state_dict(), path) or use .safetensors."
        ) from exc
    for key in ("state_dict", "model", "state_dict_ema"):  # common training-script wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise XDistillError(f"Teacher '{teacher}': '{path}' holds a {type(state).__name__}, not a state dict.")
    return state


class TimmTeacher(ModuleTeacher):
    """A timm model built and loaded in ``setup``."""

    def __init__(self, spec: TeacherSpec) -> None:
        opts: TimmOptions = spec.options
        super().__init__(spec.name, nn.Identity(), opts.feature_layer, spec.input, spec.labels, spec.modality)
        self.spec = spec
        self.options = opts
        self.checkpoint = spec.base_dir / opts.checkpoint if opts.checkpoint else None
        self._loaded = False
        self._checkpoint_hash: str | None = None

    def _load(self) -> None:
        if self._loaded:
            return
        timm = import_timm()
        kwargs = dict(self.options.kwargs)
        if self.options.num_classes is not None:
            kwargs["num_classes"] = self.options.num_classes
        try:
            model = timm.create_model(self.options.model, pretrained=False, **kwargs)
        except RuntimeError as exc:  # timm's "Unknown model" error
            raise XDistillError(f"Teacher '{self.name}': timm cannot build '{self.options.model}' ({exc}).") from exc
        if self.checkpoint is not None:
            if not self.checkpoint.is_file():
                raise XDistillError(f"Teacher '{self.name}': checkpoint '{self.checkpoint}' does not exist.")
            load_weights(model, load_checkpoint(self.checkpoint, self.name),
                         f"Teacher '{self.name}': checkpoint '{self.checkpoint.name}'",
                         f"timm's '{self.options.model}'", "Check 'model' and 'num_classes'.")
        self.model = model
        self._loaded = True

    def setup(self) -> None:
        self._load()
        super().setup()

    def fingerprint(self) -> str:
        if self.checkpoint is not None:
            if self._checkpoint_hash is None:
                if not self.checkpoint.is_file():
                    raise XDistillError(f"Teacher '{self.name}': checkpoint '{self.checkpoint}' does not exist.")
                self._checkpoint_hash = sha256_file(self.checkpoint)
            weights = self._checkpoint_hash
        else:
            self._load()  # random initial weights: hash them
            weights = state_dict_digest(self.model)
        preprocessing = {"input": asdict(self.input), "modality": self.modality,
                         **{k: v for k, v in asdict(self.options).items() if k != "checkpoint"}}
        return hashlib.sha256(f"timm|{weights}|{json.dumps(preprocessing, sort_keys=True)}".encode()).hexdigest()

    def outputs(self, batch: np.ndarray) -> TeacherOutput:
        if self.feature_layer:
            return super().outputs(batch)
        self.setup()
        x = preprocess_images(batch, self.input).to(self.device)
        with torch.inference_mode():
            trunk = self.model.forward_features(x)
            features = self.model.forward_head(trunk, pre_logits=True)
            logits = self.model.forward_head(trunk)
        if getattr(self.model, "num_classes", None) == 0:
            logits = None  # built with num_classes=0: no classifier, only features
        return checked_output(features, logits, len(x), self.labels, self.name)


TEACHER_KINDS.register("timm", TeacherKind(options=TimmOptions, build=TimmTeacher, modalities=("image",)))
