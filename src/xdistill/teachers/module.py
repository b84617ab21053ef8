"""In-process ``torch.nn.Module`` teachers; features come from a forward hook
on a named module path, so the model's ``forward`` stays untouched."""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.io import load_weights, read_safetensors
from xdistill.teachers._outputs import checked_output, split_model_output
from xdistill.teachers.base import TEACHER_KINDS, InputSpec, TeacherKind, TeacherOutput, TeacherSpec
from xdistill.teachers.preprocess import preprocess_images


def state_dict_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        t = tensor.detach().cpu().contiguous()
        digest.update(str(t.dtype).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class ModuleTeacher:
    """A teacher wrapping a live ``nn.Module``.

    ``feature_layer`` names a sub-module (as in ``model.get_submodule``) whose
    output is the feature vector; the model's own output is the logits. Without
    ``feature_layer`` the model must return ``(features, logits)`` or a dict.
    """

    def __init__(self, name: str, model: nn.Module, feature_layer: str | None = None,
                 input: InputSpec | None = None, labels: list[str] | None = None,
                 modality: str = "image", device: str = "cpu", identity: str | None = None) -> None:
        self.name = name
        self.model = model
        self.feature_layer = feature_layer
        self.input = input or InputSpec()
        self.labels = labels
        self.modality = modality
        self.device = device
        self.identity = identity
        self._captured: list[torch.Tensor] = []
        self._hook = None
        self._ready = False

    def setup(self) -> None:
        if self._ready:
            return
        self.model.eval().to(self.device)
        if self.feature_layer:
            try:
                layer = self.model.get_submodule(self.feature_layer)
            except AttributeError:
                paths = [n for n, _ in self.model.named_modules() if n]
                raise XDistillError(
                    f"Teacher '{self.name}' has no module '{self.feature_layer}' for 'feature_layer'. "
                    f"Available: {', '.join(paths[:40])}{' ...' if len(paths) > 40 else ''}."
                ) from None
            self._hook = layer.register_forward_hook(lambda _m, _i, out: self._captured.append(out))
        self._ready = True

    def fingerprint(self) -> str:
        preprocessing = {"input": asdict(self.input), "feature_layer": self.feature_layer, "modality": self.modality}
        weights = self.identity or state_dict_digest(self.model)
        return hashlib.sha256(f"module|{weights}|{json.dumps(preprocessing, sort_keys=True)}".encode()).hexdigest()

    def outputs(self, batch: np.ndarray) -> TeacherOutput:
        self.setup()
        x = preprocess_images(batch, self.input).to(self.device) if self.modality == "image" else \
            torch.as_tensor(np.asarray(batch), dtype=torch.float32, device=self.device)
        self._captured.clear()
        with torch.inference_mode():
            out = self.model(x)
        if self.feature_layer:
            if not self._captured:
                raise XDistillError(f"Teacher '{self.name}': module '{self.feature_layer}' was not called in forward.")
            features = self._captured[-1]
            if isinstance(features, (tuple, list)):
                features = features[0]
            logits = out if isinstance(out, torch.Tensor) else split_model_output(out, self.name)[1]
        else:
            features, logits = split_model_output(out, self.name)
        self._captured.clear()
        return checked_output(features, logits, len(x), self.labels, self.name)


@dataclass
class ModuleOptions:
    factory: str  # "package.module:function" returning an nn.Module
    weights: str | None = None  # a .safetensors state dict, relative to the zoo file
    feature_layer: str | None = None  # module path whose output is the features
    kwargs: dict[str, Any] = field(default_factory=dict)  # keyword arguments for the factory

    def problems(self) -> list[str]:
        problems = []
        if self.weights and not str(self.weights).endswith(".safetensors"):
            problems.append(
                f"'weights' must be a .safetensors state dict; pickled .pt/.pth files are not loaded, since "
                f"unpickling can run code. Got {self.weights!r}. Convert it once with "
                "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')."
            )
        return problems


def _import_factory(path: str, teacher: str):
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise XDistillError(f"Teacher '{teacher}': 'factory' must look like 'package.module:function'. Got {path!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise XDistillError(f"Teacher '{teacher}': cannot import '{module_name}' for 'factory' ({exc}).") from exc
    if not hasattr(module, attr):
        raise XDistillError(f"Teacher '{teacher}': module '{module_name}' has no '{attr}' for 'factory'.")
    return getattr(module, attr)


class _LazyModuleTeacher(ModuleTeacher):
    """A module teacher from a zoo entry: the factory runs and weights load in ``setup``."""

    def __init__(self, spec: TeacherSpec) -> None:
        super().__init__(spec.name, nn.Identity(), spec.options.feature_layer, spec.input, spec.labels, spec.modality)
        self.spec = spec
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        opts: ModuleOptions = self.spec.options
        model = _import_factory(opts.factory, self.name)(**opts.kwargs)
        if not isinstance(model, nn.Module):
            raise XDistillError(f"Teacher '{self.name}': factory '{opts.factory}' returned {type(model).__name__}, not an nn.Module.")
        if opts.weights:
            path = self.spec.base_dir / opts.weights
            state = read_safetensors(path, f"Teacher '{self.name}': weights file")
            load_weights(model, state, f"Teacher '{self.name}': weights file '{path}'", f"the model '{opts.factory}' builds")
        self.model = model
        self._loaded = True

    def setup(self) -> None:
        self._load()
        super().setup()

    def fingerprint(self) -> str:
        self._load()
        return super().fingerprint()


TEACHER_KINDS.register("module", TeacherKind(options=ModuleOptions, build=_LazyModuleTeacher, modalities=("image", "features")))
