"""TorchScript teachers: a scripted or traced module whose ``forward`` takes the
preprocessed float batch and returns ``(features, logits)`` or a dict."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.io import sha256_file
from xdistill.teachers._outputs import checked_output, split_model_output
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherOutput, TeacherSpec
from xdistill.teachers.preprocess import preprocess_images


@dataclass
class TorchScriptOptions:
    path: str  # the .pt file written by torch.jit.save, relative to the zoo file


class TorchScriptTeacher:
    def __init__(self, spec: TeacherSpec, device: str = "cpu") -> None:
        self.spec = spec
        self.name = spec.name
        self.labels = spec.labels
        self.modality = spec.modality
        self.path = spec.base_dir / spec.options.path
        self.device = device
        self.model: torch.jit.ScriptModule | None = None
        self._weights_hash: str | None = None

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise XDistillError(f"Teacher '{self.name}': TorchScript file '{self.path}' does not exist. Fix 'path' in the zoo file.")

    def setup(self) -> None:
        if self.model is not None:
            return
        self._check_file()
        try:
            self.model = torch.jit.load(str(self.path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as exc:
            # TorchScript's own unpickler resolves only TorchScript types: a pickle that would run
            # code ends here as "Unknown type name", never executed. Its message starts with a newline.
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise XDistillError(
                f"Teacher '{self.name}': '{self.path}' is not a TorchScript file ({reason}). "
                "Save the model with torch.jit.save(torch.jit.script(model), path)."
            ) from exc

    def fingerprint(self) -> str:
        if self._weights_hash is None:
            self._check_file()
            self._weights_hash = sha256_file(self.path)
        preprocessing = {"input": asdict(self.spec.input), "modality": self.modality}
        return hashlib.sha256(f"torchscript|{self._weights_hash}|{json.dumps(preprocessing, sort_keys=True)}".encode()).hexdigest()

    def outputs(self, batch: np.ndarray) -> TeacherOutput:
        self.setup()
        x = preprocess_images(batch, self.spec.input).to(self.device)
        with torch.inference_mode():
            out = self.model(x)
        features, logits = split_model_output(out, self.name)
        return checked_output(features, logits, len(x), self.labels, self.name)


TEACHER_KINDS.register("torchscript", TeacherKind(options=TorchScriptOptions, build=TorchScriptTeacher))
