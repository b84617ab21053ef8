"""The student registry, ``build_student`` and the checks every family shares.

A family is a factory function registered with the kind of input it reads::

    @register_student("cnn", inputs=("image",))
    def cnn(input_shape, num_classes, width: int = 16, depth: int = 2) -> CNNStudent: ...

The factory's keyword parameters are the family's knobs: ``build_student``
rejects any other keyword, listing the valid ones, before the factory runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from xdistill.errors import XDistillError, join_problems
from xdistill.registry import Registry

# What each input kind means for `input_shape` (one sample, no batch axis).
STUDENT_INPUTS = {
    "image": "(C, H, W) float images",
    "vector": "(D,) float feature vectors",
    "tokens": "(L,) int64 token ids, 0 = padding",
}
INPUT_RANKS = {"image": 3, "vector": 1, "tokens": 1}

# Every factory takes these first; they are not knobs.
FIXED_ARGUMENTS = ("input_shape", "num_classes")


@dataclass(frozen=True)
class StudentFamily:
    """A registered student family: its factory and the input kinds it reads."""

    name: str
    factory: Callable[..., nn.Module]
    inputs: tuple[str, ...]
    stages: bool = False  # its students have ``forward_stages(x) -> [intermediate features, ...]``

    @property
    def summary(self) -> str:
        """First line of the factory's docstring."""
        return (inspect.getdoc(self.factory) or "").split("\n", 1)[0]

    def knob_help(self) -> dict[str, str]:
        """Knob name -> its ``knob: text`` line in the factory's docstring."""
        knobs = self.knobs()
        lines = (line.strip() for line in (inspect.getdoc(self.factory) or "").splitlines())
        pairs = (line.split(":", 1) for line in lines if ":" in line)
        return {name.strip(): text.strip() for name, text in pairs if name.strip() in knobs}

    def knobs(self) -> dict[str, object]:
        """Knob name -> default; ``inspect.Parameter.empty`` marks a required knob."""
        parameters = inspect.signature(self.factory).parameters.values()
        return {p.name: p.default for p in parameters if p.name not in FIXED_ARGUMENTS}

    def build(self, input_shape: tuple[int, ...], num_classes: int, **knobs: object) -> nn.Module:
        """Check the arguments, then call the factory."""
        valid = self.knobs()
        unknown = sorted(set(knobs) - set(valid))
        if unknown:
            preset = "size" in valid  # knobs left None take the size preset's value
            listing = ", ".join(f"{k}={'<size preset>' if preset and v is None else _show_default(v)}"
                                for k, v in valid.items()) or "none"
            raise XDistillError(
                f"Student '{self.name}' has no knob {', '.join(repr(k) for k in unknown)}. "
                f"Valid knobs (with defaults): {listing}."
            )
        missing = [k for k, v in valid.items() if v is inspect.Parameter.empty and k not in knobs]
        problems = [f"the knob '{k}' is required (pass {k}=...)" for k in missing]
        problems += input_shape_problems(input_shape, self.inputs)
        problems += num_classes_problems(num_classes)
        if problems:
            raise XDistillError(join_problems(problems, f"Cannot build student '{self.name}'"))
        return self.factory(tuple(input_shape), num_classes, **knobs)


STUDENTS: Registry[StudentFamily] = Registry("student")


def register_student(
    name: str, inputs: tuple[str, ...], stages: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory as student family ``name`` reading the given input kinds; ``stages``: its students
    have ``forward_stages`` (see :func:`student_stages`)."""
    for kind in inputs:
        if kind not in STUDENT_INPUTS:
            raise ValueError(f"input kind '{kind}' of student '{name}' is not one of {list(STUDENT_INPUTS)}")

    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        STUDENTS.register(name, StudentFamily(name, factory, inputs, stages))
        return factory

    return add


def build_student(name: str, input_shape: tuple[int, ...], num_classes: int, **knobs: object) -> nn.Module:
    """Build the student family ``name`` for one sample shape and label space.

    ``input_shape`` has no batch axis: (C, H, W) for images, (D,) for feature
    vectors, (L,) for token ids. Text students also need ``vocab_size``.
    """
    return STUDENTS.get(name).build(input_shape, num_classes, **knobs)


SIZES = ("small", "base")  # the size presets of the families that have them (the knob 'size')


def from_preset(size: str, presets: dict[str, dict[str, object]], **given: object) -> tuple[dict[str, object], list[str]]:
    """The knobs a family builds with: each knob as given, or, when it is None, the value of the ``size``
    preset; and the problem with ``size``, if any."""
    problems = one_of("size", size, tuple(presets))
    if problems:
        return {}, problems
    return {k: presets[size][k] if v is None else v for k, v in given.items()}, []


def student_stages(student: nn.Module, x) -> list:
    """``student.forward_stages(x)``: the student's intermediate features, one entry per stage (CNN and
    ResNet stages [N, C, H, W], transformer and mixer blocks [N, T, D]), for methods and losses that read
    inside the student; a clear error for a student without stages."""
    forward = getattr(student, "forward_stages", None)
    if forward is None:
        with_stages = ", ".join(name for name, family in STUDENTS.items() if family.stages)
        raise XDistillError(
            f"The student ({type(student).__name__}) has no stages: it exposes only its final features, but this "
            f"method or loss reads intermediate features. Choose a student with stages: {with_stages}."
        )
    return forward(x)


def input_shape_problems(input_shape: object, inputs: tuple[str, ...]) -> list[str]:
    """Problems with ``input_shape`` for a student that reads the given input kinds."""
    expected = " or ".join(STUDENT_INPUTS[kind] for kind in inputs)
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_shape
    ):
        return [f"the input_shape must be a tuple of ints >= 1 for {expected}. Got {input_shape!r}."]
    ranks = {INPUT_RANKS[kind] for kind in inputs}
    if len(input_shape) not in ranks:
        return [
            f"the input_shape must describe {expected} (one sample, no batch axis). "
            f"Got {tuple(input_shape)} with {len(input_shape)} axes."
        ]
    return []


def num_classes_problems(num_classes: object) -> list[str]:
    if isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes >= 2:
        return []
    return [f"num_classes must be an int >= 2. Got {num_classes!r}."]


def int_at_least(knob: str, value: object, minimum: int) -> list[str]:
    """The problem with an integer knob below ``minimum``, if any."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return []
    return [f"the knob '{knob}' must be an int >= {minimum}. Got {value!r}."]


def one_of(knob: str, value: object, choices: tuple[str, ...]) -> list[str]:
    if value in choices:
        return []
    return [f"the knob '{knob}' must be one of {', '.join(repr(c) for c in choices)}. Got {value!r}."]


def dim_divisible_by_heads(dim: int, heads: int) -> list[str]:
    """The problem with an attention width that does not split evenly over heads, if any."""
    if dim % heads == 0:
        return []
    suggestion = dim - dim % heads or heads
    return [f"the knob 'dim' must be divisible by 'heads' ({heads}). Got dim={dim}; try dim={suggestion}."]


def raise_problems(student: str, problems: list[str]) -> None:
    """Raise every knob problem of ``student`` at once, if there are any."""
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid knobs for student '{student}'"))


def _show_default(default: object) -> str:
    return "<required>" if default is inspect.Parameter.empty else repr(default)
