"""Bring your own student: ``wrap_user_module`` makes any classifier honour the interface.

The wrapped module's ``forward`` is left untouched. Its penultimate features
are read with a forward hook: by default the input of its classifier head (the
last ``nn.Linear``), or the output of the module path given as ``feature_layer``.
"""

from __future__ import annotations

import difflib

import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.students.build import STUDENT_INPUTS, input_shape_problems
from xdistill.students.cost import evaluating

MAX_LISTED_PATHS = 40


class UserStudent(nn.Module):
    """A user's classifier seen through the student interface.

    ``forward(x)`` is the user's ``forward``; ``forward_features(x)`` runs it and
    returns what the hook saw, flattened to [N, feature_dim]. Assigning
    ``student.head = nn.Linear(...)`` replaces the classifier inside the
    wrapped module, so ``forward`` uses the new head.
    """

    def __init__(
        self,
        module: nn.Module,
        input_shape: tuple[int, ...],
        feature_dim: int,
        head_layer: str,
        feature_layer: str | None = None,
        input_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.module = module
        self.input_shape = tuple(input_shape)
        self.feature_dim = feature_dim
        self.head_layer = head_layer
        self.feature_layer = feature_layer
        self.input_dtype = input_dtype

    @property
    def head(self) -> nn.Linear:
        return self.module.get_submodule(self.head_layer)

    def __setattr__(self, name: str, value: object) -> None:
        if name != "head":
            super().__setattr__(name, value)
            return
        if not isinstance(value, nn.Linear):
            raise XDistillError(f"The head of a wrapped student must be an nn.Linear. Got {type(value).__name__}.")
        self.module.set_submodule(self.head_layer, value)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, *input_shape] -> [N, feature_dim]."""
        return self._run_and_capture(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, *input_shape] -> logits [N, num_classes]."""
        return self.module(x)

    def _run_and_capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the wrapped module once -> (its output, the hooked features [N, D])."""
        seen: list[object] = []
        if self.feature_layer is None:
            handle = self.head.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
            where = f"the input of the head '{self.head_layer}'"
        else:
            hooked = self.module.get_submodule(self.feature_layer)
            handle = hooked.register_forward_hook(lambda _module, _args, output: seen.append(output))
            where = f"the output of '{self.feature_layer}'"
        try:
            output = self.module(x)
        finally:
            handle.remove()
        if not seen:
            raise XDistillError(
                f"The wrapped {type(self.module).__name__} never called the module behind {where} in its forward. "
                "Pass a feature_layer that its forward uses."
            )
        if not isinstance(seen[-1], torch.Tensor):
            raise XDistillError(
                f"Features must be one tensor, but {where} is a {type(seen[-1]).__name__}. "
                "Pass a feature_layer whose output is a single tensor."
            )
        return output, seen[-1].flatten(1)


def wrap_user_module(
    module: nn.Module,
    input_shape: tuple[int, ...],
    feature_layer: str | None = None,
    head_layer: str | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> UserStudent:
    """Wrap a user's classifier ``module`` (x [N, *input_shape] -> logits [N, C]) as a student.

    head_layer: module path of the classifier ``nn.Linear``; default the last
        ``nn.Linear`` registered in ``module``.
    feature_layer: module path whose output is the penultimate features;
        default the input of the head. Its flattened output must be exactly
        what the head reads, so that ``forward == head(forward_features)``.
    input_dtype: ``torch.long`` for token ids.

    One probe forward on two samples (in eval mode, without gradients) checks
    the paths and finds ``feature_dim``.
    """
    if not isinstance(module, nn.Module):
        raise XDistillError(f"wrap_user_module needs a torch.nn.Module. Got {type(module).__name__}.")
    problems = input_shape_problems(input_shape, tuple(STUDENT_INPUTS))
    if problems:
        raise XDistillError(f"Cannot wrap {type(module).__name__}: {problems[0]}")
    paths = [name for name, _ in module.named_modules() if name]
    if head_layer is None:
        linear_paths = [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear)]
        if not linear_paths:
            raise XDistillError(
                f"{type(module).__name__} has no nn.Linear to use as the classifier head. "
                f"Pass head_layer='<path>' naming its final nn.Linear ({_listing(paths)})."
            )
        head_layer = linear_paths[-1]
    _check_path(module, head_layer, "head_layer", paths)
    if not isinstance(module.get_submodule(head_layer), nn.Linear):
        raise XDistillError(
            f"The head_layer '{head_layer}' must be an nn.Linear. "
            f"Got {type(module.get_submodule(head_layer)).__name__}. Pass the path of the final nn.Linear."
        )
    if feature_layer is not None:
        _check_path(module, feature_layer, "feature_layer", paths)
    student = UserStudent(module, input_shape, 0, head_layer, feature_layer, input_dtype)
    student.feature_dim = _probe_feature_dim(student)
    return student


def _probe_feature_dim(student: UserStudent) -> int:
    """Run two samples through the wrapped module and check that its features feed the head."""
    shape = (2, *student.input_shape)
    if student.input_dtype.is_floating_point:
        probe = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(student.input_dtype)
    else:
        probe = torch.ones(shape, dtype=student.input_dtype)
    name = type(student.module).__name__
    with evaluating(student), torch.no_grad():
        try:
            logits, features = student._run_and_capture(probe)
        except RuntimeError as error:
            raise XDistillError(
                f"{name} failed on a probe batch of shape {shape} ({student.input_dtype}): {error}. "
                "Check input_shape and input_dtype."
            ) from error
        head = student.head
        if features.shape[1] != head.in_features:
            raise XDistillError(
                f"The features hooked at '{student.feature_layer}' have {features.shape[1]} values per sample, "
                f"but the head '{student.head_layer}' reads {head.in_features}. "
                "Pass the feature_layer whose output the head reads, or leave feature_layer=None."
            )
        if not isinstance(logits, torch.Tensor) or not torch.allclose(head(features), logits, atol=1e-5):
            raise XDistillError(
                f"The output of {name} is not head(features) for the head '{student.head_layer}'. "
                "Its forward must end with that nn.Linear and return its logits; "
                "pass the right head_layer and feature_layer."
            )
    return features.shape[1]


def _check_path(module: nn.Module, path: str, argument: str, paths: list[str]) -> None:
    if path in paths:
        return
    close = difflib.get_close_matches(str(path), paths, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise XDistillError(
        f"The {argument} '{path}' is not a module path of {type(module).__name__}.{hint} "
        f"Available paths: {_listing(paths)}."
    )


def _listing(paths: list[str]) -> str:
    if len(paths) <= MAX_LISTED_PATHS:
        return ", ".join(paths) or "none"
    return ", ".join(paths[:MAX_LISTED_PATHS]) + f", ... ({len(paths) - MAX_LISTED_PATHS} more)"
