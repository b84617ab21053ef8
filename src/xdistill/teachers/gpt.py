"""The ``gpt`` teacher kind: xdistill's own causal language model, read from a folder.

    - name: python-code
      kind: gpt
      path: teachers/python-code        # model.safetensors, config.json, tokenizer.json
      domain: Python source code

A language-model teacher keeps its own tokenizer and answers ``token_logits(ids [B, T]) ->
[B, T, V]``; the language-modeling kind turns that into bits per byte and cached top-k
distributions (``xdistill.kinds.language_modeling``). It has no classification outputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors.torch import load_file

from xdistill.errors import XDistillError
from xdistill.models.gpt import GPT, GPTConfig
from xdistill.models.tokenizer import load_tokenizer
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherOutput, TeacherSpec

GPT_FILES = ("model.safetensors", "config.json", "tokenizer.json")


@dataclass
class GPTOptions:
    path: str  # folder (relative to the zoo file) holding model.safetensors, config.json, tokenizer.json
    batch_size: int = 16  # windows per forward pass (1-256)

    def problems(self) -> list[str]:
        return [] if self.batch_size >= 1 else [f"'batch_size' must be >= 1. Got {self.batch_size}."]

    def path_problems(self, base_dir: Path) -> list[str]:
        folder = base_dir / self.path
        if not folder.is_dir():
            return [f"path '{folder}' is not a folder. A gpt teacher is a folder holding {', '.join(GPT_FILES)}."]
        missing = [name for name in GPT_FILES if not (folder / name).is_file()]
        return [f"path '{folder}' has no {', '.join(missing)}. A gpt teacher folder holds {', '.join(GPT_FILES)} "
                "(xdistill's LM demo world writes them)."] if missing else []


def load_gpt_folder(folder: Path) -> GPT:
    """The model saved in ``folder`` (config.json + model.safetensors), in eval mode."""
    try:
        config = GPTConfig.from_json((folder / "config.json").read_text())
    except (OSError, ValueError, TypeError) as exc:
        raise XDistillError(f"'{folder / 'config.json'}' is not a gpt config ({exc}).") from None
    problems = config.problems()
    if problems:
        raise XDistillError(f"'{folder / 'config.json'}': {' '.join(problems)}")
    model = GPT(config)
    try:
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
    except (OSError, RuntimeError) as exc:
        raise XDistillError(f"'{folder / 'model.safetensors'}' does not hold the weights config.json describes "
                            f"({str(exc).splitlines()[0]}).") from None
    return model.eval()


def folder_digest(folder: Path, names: tuple[str, ...] = GPT_FILES) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(hashlib.sha256((folder / name).read_bytes()).digest())
    return digest.hexdigest()


class GPTTeacher:
    """A causal LM teacher: its tokenizer, its context and next-token logits."""

    language_model = True

    def __init__(self, spec: TeacherSpec, device: str = "cpu") -> None:
        self.spec, self.name, self.labels, self.modality = spec, spec.name, None, spec.modality
        self.domain = spec.domain
        self.device = device
        self.folder = spec.base_dir / spec.options.path
        self.batch_size = spec.options.batch_size
        self.model: GPT | None = None
        self._tokenizer = None
        self._fingerprint: str | None = None

    def setup(self) -> None:
        if self.model is None:
            self.model = load_gpt_folder(self.folder).to(self.device)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.folder / "tokenizer.json")
        return self._tokenizer

    @cached_property
    def _config(self) -> dict:
        return json.loads((self.folder / "config.json").read_text())

    @property
    def context(self) -> int:
        return int(self._config["context"])

    @property
    def vocab_size(self) -> int:
        return int(self._config["vocab_size"])

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = "gpt|" + folder_digest(self.folder)
        return self._fingerprint

    @torch.inference_mode()
    def token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        self.setup()
        return self.model.token_logits(ids.to(self.device)).float().cpu()

    def outputs(self, batch) -> TeacherOutput:
        raise XDistillError(f"Teacher '{self.name}' is a language model (kind gpt): it scores and predicts text for "
                            "tasks of kind 'language-modeling', not classification. Remove it from this zoo.")


TEACHER_KINDS.register("gpt", TeacherKind(options=GPTOptions, build=GPTTeacher, modalities=("text",)))
