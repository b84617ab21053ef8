"""Teachers: anything that maps a batch of target inputs to features and,
when it has them, logits over its own label names. See :mod:`.base`."""

from xdistill.teachers import callable as _callable  # noqa: F401  (registers the kind)
from xdistill.teachers import hf as _hf  # noqa: F401
from xdistill.teachers import hf_kind as _hf_kind  # noqa: F401
from xdistill.teachers import module as _module  # noqa: F401
from xdistill.teachers import onnx as _onnx  # noqa: F401
from xdistill.teachers import timm_teacher as _timm_teacher  # noqa: F401
from xdistill.teachers import torchscript as _torchscript  # noqa: F401
from xdistill.teachers.base import (
    TEACHER_KINDS,
    InputSpec,
    Teacher,
    TeacherKind,
    TeacherOutput,
    TeacherSpec,
    create_teacher,
)
from xdistill.teachers.module import ModuleTeacher
from xdistill.teachers.preprocess import preprocess_images
from xdistill.teachers.torchscript import TorchScriptTeacher
from xdistill.teachers.zoo import Zoo, check_modalities, load_zoo, parse_zoo

__all__ = [
    "TEACHER_KINDS",
    "InputSpec",
    "ModuleTeacher",
    "Teacher",
    "TeacherKind",
    "TeacherOutput",
    "TeacherSpec",
    "TorchScriptTeacher",
    "Zoo",
    "check_modalities",
    "create_teacher",
    "load_zoo",
    "parse_zoo",
    "preprocess_images",
]
