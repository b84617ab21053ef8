"""Hugging Face image teachers: ``kind: hf`` with ``modality: image``, loaded offline from a local folder.

    - name: vit-base
      kind: hf
      modality: image
      path: models/vit-base-patch16-224   # save_pretrained of the model AND of its image processor
      domain: ImageNet photos

    - name: clip-b32
      kind: hf
      modality: image
      path: openai/clip-vit-base-patch32  # a hub name already in the local Hugging Face cache

The folder holds the model (``config.json`` and weights) and its image
processor (``preprocessor_config.json``); ``path`` resolves as for text models
(a folder relative to the zoo file, or a hub name in the local cache: nothing is
ever downloaded). ``task`` may be ``classification`` (what image teachers do);
``pooling``, ``max_length`` and ``input`` belong to text or to other kinds and
are refused, since the image processor decides size and normalisation.

What the teacher gives, by what the folder holds:

- a ``...ForImageClassification`` model: features are the input of its
  classification head (its pooled pre-logits: ViT's final [CLS] token,
  ConvNeXt's and ResNet's pooled map), logits are the head's output and the
  label names default to ``config.id2label``;
- a CLIP model (a ``CLIPModel`` folder): the projected image embedding of
  ``get_image_features``; a ``CLIPVisionModelWithProjection`` folder: its
  ``image_embeds``;
- any other backbone (``ViTModel``, ``Dinov2Model``, ``ConvNextModel``,
  ``ResNetModel``, ``CLIPVisionModel``, ...): its ``pooler_output``. A model
  without a pooler, or whose folder lacks the pooler's weights, gives the mean
  of its last hidden state over tokens (or over spatial positions for
  convolutional maps) instead, never a randomly initialised pooler.

Raw task images (uint8 or float in [0, 1], N x H x W or N x H x W x C) have
their channels converted to what the model takes (grey repeated to RGB, RGB to
luma for one-channel models, alpha dropped), are quantised to uint8 (the
processors resize through PIL, which works on uint8 anyway), and then go
through the folder's image processor (resize, crop, rescale, normalise).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from xdistill.data.tensors import images_to_tensor
from xdistill.errors import XDistillError
from xdistill.teachers._outputs import checked_output
from xdistill.teachers.base import TeacherOutput, TeacherSpec
from xdistill.teachers.hf import (
    HFOptions,
    _FolderTeacher,
    _import_transformers,
    model_files_digest,
    resolve_model_dir,
)
from xdistill.teachers.preprocess import convert_channels

PROCESSOR_FILE = "preprocessor_config.json"
# Bumped whenever the conversion from raw task images to processor input changes, so caches are recomputed.
_PREPROCESSING = "channels-uint8-processor/1"
_NOT_FOR_IMAGES = {
    "pooling": "an image model pools as it was built (see the docs)",
    "max_length": "it counts text tokens",
    "input": f"the folder's image processor ({PROCESSOR_FILE}) resizes and normalises",
}


def image_entry_problems(options: HFOptions, keys: set[str], base_dir: Path) -> list[str]:
    """What a zoo entry of an image model gets wrong, found before anything loads."""
    problems = [f"'{key}' does not apply to image models ({why}). Remove it."
                for key, why in _NOT_FOR_IMAGES.items() if key in keys]
    if options.task == "causal-lm":
        problems.append("'task: causal-lm' is for text models; an image model takes 'task: classification' "
                        "(or no 'task').")
    try:
        folder = resolve_model_dir(options.path, base_dir)
    except XDistillError:
        return problems  # already reported by the path check
    problems += folder_problems(folder)
    return problems


def folder_problems(folder: Path) -> list[str]:
    """Files an image model folder needs and lacks."""
    missing = [name for name in ("config.json", PROCESSOR_FILE) if not (folder / name).is_file()]
    if not missing:
        return []
    return [f"The model folder '{folder}' has no {' and no '.join(missing)}. Save both the model and its image "
            "processor into it: model.save_pretrained(FOLDER) and "
            "AutoImageProcessor.from_pretrained(NAME).save_pretrained(FOLDER)."]


def model_channels(config) -> int:
    """Colour channels the model's first layer takes (CLIP keeps them in its vision config)."""
    for cfg in (config, getattr(config, "vision_config", None)):
        channels = getattr(cfg, "num_channels", None)
        if isinstance(channels, int):
            return channels
    return 3


def mean_pool(hidden: torch.Tensor) -> torch.Tensor:
    """Last hidden state [N, L, D] (tokens) or [N, C, H, W] (a feature map) -> [N, D] or [N, C]."""
    return hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)


def processor_input(batch: np.ndarray | torch.Tensor, channels: int) -> list[np.ndarray]:
    """Raw images -> a list of uint8 H x W x ``channels`` arrays, what image processors read like photos."""
    images = batch if isinstance(batch, torch.Tensor) else images_to_tensor(batch)
    images = convert_channels(images, channels)
    quantised = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return list(quantised.numpy())


class HFImageTeacher(_FolderTeacher):
    """A transformers vision model plus its image processor."""

    kind = "hf"

    def __init__(self, spec: TeacherSpec, device: str = "cpu") -> None:
        super().__init__(spec, device)
        self.processor = None
        self.route = ""  # classifier | image-features | projection | pooler | mean
        self.channels = 3
        self._head_input: list[torch.Tensor] = []

    def setup(self) -> None:
        if self.model is not None:
            return
        transformers = _import_transformers()
        folder = self.folder
        problems = folder_problems(folder)
        if problems:
            raise XDistillError(f"Teacher '{self.name}': {problems[0]}")
        try:
            config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
            model_class, self.route = self._model_class(transformers, config)
            model, loading = model_class.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
            self.processor = self._load_processor(transformers, folder)
        except (OSError, ValueError, KeyError) as exc:
            raise self._load_error(exc) from exc
        if self.route == "image-features" and not hasattr(model, "get_image_features"):
            self.route = "pooler"
        if self.route == "pooler" and getattr(model, "pooler", True) is None:
            self.route = "mean"
        missing = sorted(loading.get("missing_keys") or [])
        if self.route == "pooler" and missing and all(k.startswith("pooler.") for k in missing):
            self.route, missing = "mean", []  # saved without a pooler: its random weights would mean nothing
        if missing:
            raise XDistillError(
                f"Teacher '{self.name}': the model folder '{folder}' lacks {len(missing)} weights of "
                f"{type(model).__name__} (e.g. {', '.join(missing[:3])}). The folder is incomplete or holds another "
                "architecture; save the model again with save_pretrained."
            )
        if self.route == "classifier":
            head = getattr(model, "classifier", None)
            if not isinstance(head, torch.nn.Module):
                raise XDistillError(
                    f"Teacher '{self.name}': {type(model).__name__} has no 'classifier' module whose input could "
                    "serve as features. Save its backbone alone (model.base_model.save_pretrained) and use that."
                )
            head.register_forward_pre_hook(lambda _module, args: self._head_input.append(args[0]))
            if self.labels is None:
                self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.channels = model_channels(config)
        self.model = model.eval().to(self.device)

    @staticmethod
    def _model_class(transformers, config):
        """The class the folder's ``architectures`` call for, and how its features are read."""
        architectures = [str(a) for a in (getattr(config, "architectures", None) or [])]
        if any(a.endswith("ForImageClassification") for a in architectures):
            return transformers.AutoModelForImageClassification, "classifier"
        for name in architectures:
            if name.endswith("VisionModelWithProjection") and hasattr(transformers, name):
                return getattr(transformers, name), "projection"
        return transformers.AutoModel, "image-features"

    @staticmethod
    def _load_processor(transformers, folder: Path):
        # The fast processors need torchvision; the PIL ones give the same preprocessing without it.
        major = int(transformers.__version__.split(".")[0])
        kind = {"backend": "pil"} if major >= 5 else {"use_fast": False}
        return transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True, **kind)

    def fingerprint(self) -> str:
        if self._weights_hash is None:
            self._weights_hash = model_files_digest(self.folder)  # weights and configs, the processor's included
        # 'task' is left out: image models take classification only, written or not.
        described = json.dumps({"modality": "image", "preprocessing": _PREPROCESSING}, sort_keys=True)
        return hashlib.sha256(f"{self.kind}|{self._weights_hash}|{described}".encode()).hexdigest()

    def _forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """pixel_values [B, C, H', W'] -> (features [B, D], logits [B, C_teacher] or None)."""
        if self.route == "image-features":
            out = self.model.get_image_features(pixel_values=pixel_values)
            return (out if isinstance(out, torch.Tensor) else out.pooler_output), None
        if self.route == "classifier":
            self._head_input.clear()
            logits = self.model(pixel_values=pixel_values).logits
            return self._head_input[-1], logits
        out = self.model(pixel_values=pixel_values)
        if self.route == "projection":
            return out.image_embeds, None
        if self.route == "pooler":
            return out.pooler_output, None
        return mean_pool(out.last_hidden_state), None

    def outputs(self, batch) -> TeacherOutput:
        self.setup()
        images = processor_input(batch, self.channels)
        features, logits = [], []
        for start in range(0, len(images), self.options.batch_size):
            chunk = images[start:start + self.options.batch_size]
            pixels = self.processor(images=chunk, return_tensors="pt", input_data_format="channels_last")
            with torch.inference_mode():
                chunk_features, chunk_logits = self._forward(pixels["pixel_values"].to(self.device))
            features.append(chunk_features.reshape(len(chunk), -1).float().cpu())
            if chunk_logits is not None:
                logits.append(chunk_logits.float().cpu())
        logits_or_none = torch.cat(logits) if logits else None
        return checked_output(torch.cat(features), logits_or_none, len(images), self.labels, self.name)
