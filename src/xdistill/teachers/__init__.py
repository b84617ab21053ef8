"""Teachers: anything that maps a batch of target inputs to features and,
when it has them, logits over its own label names. See :mod:`.base`."""

from xdistill.registry import import_submodules
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

import_submodules(__name__, __path__)  # each teacher kind's module registers it
