"""The ``hf`` teacher kind: a Hugging Face folder read as a text encoder (:mod:`.hf`), with
``task: causal-lm`` as a language model (:mod:`.hf_causal`) or, with ``modality: image``, as an
image model (:mod:`.hf_image`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherSpec
from xdistill.teachers.hf import HFOptions, HFTeacher
from xdistill.teachers.hf_causal import HFCausalLMTeacher
from xdistill.teachers.hf_image import HFImageTeacher, image_entry_problems


@dataclass
class HFEntryOptions(HFOptions):
    """HFOptions, with the checks that depend on the entry's modality."""

    def modality_problems(self, modality: str, keys: set[str], base_dir: Path) -> list[str]:
        """Keys and folder contents that do not fit the entry's modality; ``keys`` are those the entry wrote."""
        if modality == "image":
            return image_entry_problems(self, keys, base_dir)
        return self.text_problems()


def build_hf_teacher(spec: TeacherSpec):
    """Text models are read by :class:`HFTeacher` (as encoders) or :class:`HFCausalLMTeacher` (``task: causal-lm``),
    image models by :class:`HFImageTeacher`."""
    if spec.modality == "image":
        return HFImageTeacher(spec)
    return HFCausalLMTeacher(spec) if spec.options.task == "causal-lm" else HFTeacher(spec)


TEACHER_KINDS.register("hf", TeacherKind(options=HFEntryOptions, build=build_hf_teacher, modalities=("text", "image")))
