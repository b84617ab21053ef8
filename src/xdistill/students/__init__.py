"""Student model families and what they cost.

Every student honours one interface, whichever family built it:

- ``build_student(name, input_shape, num_classes, **knobs) -> nn.Module``.
  ``input_shape`` is one sample without the batch axis: (C, H, W) for images,
  (D,) for feature vectors, (L,) for int64 token ids (0 = padding; text
  students also need ``vocab_size``). An unknown name suggests close matches;
  an unknown knob or a bad value raises ``XDistillError`` naming the valid ones.
- ``forward(x) -> logits [N, num_classes]``.
- ``forward_features(x) -> [N, feature_dim]``: the penultimate features, so
  ``forward(x) == head(forward_features(x))``.
- attributes ``feature_dim: int``, ``head: nn.Linear`` (assign a new
  ``nn.Linear(feature_dim, C)`` to move a student to another label space) and
  ``input_shape``; text students also set ``input_dtype = torch.long``.
- the same weights for the same ``torch.manual_seed``.
- families registered with ``stages=True`` also have ``forward_stages(x) -> [intermediate
  features, ...]``, one entry per stage or block ([N, C, H, W] maps for conv nets, [N, T, D]
  tokens for transformers and mixers); ``student_stages(student, x)`` calls it and refuses a
  student without stages with the list of those that have them.

Families: ``cnn``, ``resnet``, ``vit``, ``mixer`` (images, with stages and size presets:
the knob ``size`` is ``small`` or ``base``, and knobs left unset take the preset's value),
``mlp``, ``linear`` (feature vectors or images, flattened), ``text-cnn``,
``text-transformer`` (token ids). Any other
classifier joins through ``wrap_user_module(module, input_shape, feature_layer=...)``.
A new family is a factory decorated with ``@register_student(name, inputs=...)``
in a module of its own in this package (every module here is imported with it);
its keyword parameters are its knobs.
"""

from xdistill.registry import import_submodules
from xdistill.students.build import SIZES, STUDENTS, StudentFamily, build_student, register_student, student_stages
from xdistill.students.cost import count_flops, count_params, cpu_latency_ms, describe_students
from xdistill.students.user import UserStudent, wrap_user_module

import_submodules(__name__, __path__)  # each family's module registers it

__all__ = [
    "SIZES",
    "STUDENTS",
    "StudentFamily",
    "UserStudent",
    "build_student",
    "count_flops",
    "count_params",
    "cpu_latency_ms",
    "describe_students",
    "register_student",
    "student_stages",
    "wrap_user_module",
]
