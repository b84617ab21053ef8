"""What every loss shares: the ``LOSSES`` registry, input checks, the batch
reduction and the teacher's log-probabilities.

Input checks collect every problem with a call before raising, so a user sees
all of them at once. Each returns a list of messages (empty when all is well).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from numbers import Real

import torch
from torch import Tensor

from xdistill.errors import XDistillError, join_problems
from xdistill.registry import Registry

LOSSES = Registry("loss")

# The named inputs a training step can hand a loss. Each registered loss declares the ones it consumes
# (they are its parameter names), so a step calls any loss the same way and needs no case per loss.
STEP_INPUTS = {
    "student_logits": "[N, C] student logits",
    "teacher_probs": "[N, C] teacher probabilities over the target classes (rows sum to 1)",
    "target_probs": "[N, C] soft targets: in a distillation step, the same tensor as teacher_probs",
    "labels": "[N] target classes: the labels on labeled rows, the targets' argmax elsewhere",
    "temperature": "the run's kd_temperature",
    "student_features": "[N, Ds] student features (with config projector=pool|attention, for losses that take a "
                        "projector: the layout [N, Df + T * Ds], its pooled features then the tokens of the stage "
                        "the projector reads, flattened, xdistill.losses.alignment.layout)",
    "teacher_features": "[N, Dt] teacher features",
    "projector": "nn.Module mapping student features to the teacher's dimension",
    "teacher_class_means": "[C, Dt] the teacher's mean feature of each target class",
    "exit_logits": "S tensors [N, C]: the logits of the student's exit branches after its intermediate stages",
}
Schedule = Callable[[int, int], float]  # (step, total_steps) -> value


def register_loss(name: str, consumes: tuple[str, ...], scheduled: dict[str, Schedule] | None = None):
    """Register a loss under ``name``, declaring what it consumes.

    consumes: step inputs (keys of :data:`STEP_INPUTS`) passed by keyword under their own names.
    scheduled: further keyword arguments that follow training progress, each a function of
    (step, total_steps), e.g. TAID's interpolation coefficient.
    """
    unknown = [c for c in consumes if c not in STEP_INPUTS]
    if unknown:
        raise ValueError(f"loss '{name}' consumes unknown step inputs {unknown}; known: {sorted(STEP_INPUTS)}")

    def add(fn: Callable) -> Callable:
        fn.consumes = tuple(consumes)
        fn.scheduled = dict(scheduled or {})
        return LOSSES.register(name)(fn)

    return add


def call_loss(name: str, inputs: dict[str, object], step: int = 0, total_steps: int = 1,
              weight: Tensor | None = None) -> dict[str, Tensor]:
    """Call the registered loss ``name`` with the step inputs it consumes and its scheduled arguments, and with
    per-sample ``weight [N]`` when given (see :func:`takes_weights`)."""
    fn = LOSSES.get(name)
    kwargs = {key: inputs[key] for key in fn.consumes}
    kwargs.update({key: schedule(step, total_steps) for key, schedule in fn.scheduled.items()})
    if weight is not None:
        if not takes_weights(name):
            raise XDistillError(f"Loss '{name}' takes no per-sample weights. Choose a loss that does "
                                f"({', '.join(n for n in LOSSES.names() if takes_weights(n))}).")
        kwargs["weight"] = weight
    return fn(**kwargs)


def takes_weights(name: str) -> bool:
    """Whether the registered loss ``name`` takes per-sample weights (a ``weight [N]`` keyword)."""
    return "weight" in inspect.signature(LOSSES.get(name)).parameters


def losses_consuming(available: set[str] | frozenset[str], needed: str) -> list[str]:
    """Registered losses whose inputs are all ``available`` and that consume ``needed``."""
    return [n for n, fn in LOSSES.items() if needed in fn.consumes and set(fn.consumes) <= set(available)]

# Teacher rows may drift from summing to 1 by rounding (float16 caches, mixtures
# of several teachers); anything further off is a bridging bug worth reporting.
ROW_SUM_TOLERANCE = 1e-3


def raise_problems(problems: list[str], loss: str) -> None:
    """Raise one XDistillError naming every problem found, if there is any."""
    if len(problems) == 1:
        raise XDistillError(problems[0])
    if problems:
        raise XDistillError(join_problems(problems, f"{loss} got invalid inputs"))


def describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return repr(value)


def check_number(
    value: object, name: str, loss: str, *, low: float, high: float = math.inf, low_open: bool
) -> list[str]:
    """``value`` must be a real number in (low, high] or [low, high]."""
    is_real = isinstance(value, Real) and not isinstance(value, bool)
    if is_real and math.isfinite(value):
        above_low = value > low if low_open else value >= low
        if above_low and value <= high:
            return []
    bound = f"> {low:g}" if low_open else f">= {low:g}"
    if high != math.inf:
        bound = f"in ({low:g}, {high:g}]" if low_open else f"in [{low:g}, {high:g}]"
    return [f"The '{name}' of {loss} must be a float {bound}. Got {describe(value)}."]


def check_matrix(value: object, name: str, loss: str, *, min_rows: int = 1, min_cols: int = 1) -> list[str]:
    """``value`` must be a 2-D floating-point tensor of at least the given size."""
    if not isinstance(value, Tensor) or value.ndim != 2 or not value.is_floating_point():
        shape = "[N, D]" if name.endswith("features") or name in ("x", "y") else "[N, C]"
        return [f"The '{name}' of {loss} must be a 2-D float tensor {shape}. Got {describe(value)}."]
    rows, cols = value.shape
    if rows < min_rows or cols < min_cols:
        return [
            f"The '{name}' of {loss} needs at least {min_rows} rows and {min_cols} columns. "
            f"Got shape {list(value.shape)}."
        ]
    return []


def check_probabilities(probs: Tensor, name: str, loss: str, shape: torch.Size) -> list[str]:
    """``probs`` must have ``shape``, be finite, non-negative and have rows summing to 1."""
    if probs.shape != shape:
        return [
            f"The '{name}' of {loss} must have the student's shape {list(shape)}. "
            f"Got {list(probs.shape)}. Bridge the teacher's predictions into the target classes first."
        ]
    # Sum in at least float32: float16 accumulation alone can exceed the tolerance.
    detached = probs.detach().to(torch.promote_types(probs.dtype, torch.float32))
    finite = torch.isfinite(detached).all(dim=1)
    negative = (detached < 0).any(dim=1)
    off_sum = (detached.sum(dim=1) - 1).abs() > ROW_SUM_TOLERANCE
    n_not_finite, n_negative, n_off_sum = (
        torch.stack([(~finite).sum(), negative.sum(), (off_sum & finite).sum()]).tolist()
    )
    rows = probs.shape[0]
    problems = []
    if n_not_finite:
        problems.append(f"The '{name}' of {loss} must be finite. Got NaN or inf in {n_not_finite} of {rows} rows.")
    if n_negative:
        problems.append(
            f"The '{name}' of {loss} must be probabilities >= 0. Got negative values in {n_negative} of {rows} rows."
        )
    if n_off_sum:
        problems.append(
            f"The rows of '{name}' of {loss} must sum to 1. Got {n_off_sum} of {rows} rows off by more than "
            f"{ROW_SUM_TOLERANCE:g}. Pass probabilities (softmax of logits), normalised per row."
        )
    return problems


def check_labels(labels: object, loss: str, rows: int, classes: int) -> list[str]:
    """``labels`` must be an integer tensor [rows] with values in [0, classes)."""
    if not isinstance(labels, Tensor) or labels.shape != (rows,) or labels.is_floating_point() or labels.is_complex():
        return [f"The 'labels' of {loss} must be an integer tensor of shape [{rows}]. Got {describe(labels)}."]
    if rows and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        return [
            f"The 'labels' of {loss} must be class indices in [0, {classes - 1}]. "
            f"Got values from {int(labels.min())} to {int(labels.max())}."
        ]
    return []


def check_weight(weight: object, loss: str, rows: int) -> list[str]:
    """``weight`` must be None or a finite, non-negative float tensor [rows]."""
    if weight is None:
        return []
    if not isinstance(weight, Tensor) or weight.shape != (rows,) or not weight.is_floating_point():
        return [f"The 'weight' of {loss} must be None or a float tensor of shape [{rows}]. Got {describe(weight)}."]
    if not bool(torch.isfinite(weight).all() & (weight >= 0).all()):
        return [f"The 'weight' of {loss} must be finite and >= 0. Got min {weight.min().item():g}."]
    return []


def check_logits_and_probs(
    loss: str, student_logits: object, probs: object, probs_name: str = "teacher_probs"
) -> list[str]:
    """The common checks of a student-logits / target-probabilities pair."""
    problems = check_matrix(student_logits, "student_logits", loss)
    problems += check_matrix(probs, probs_name, loss)
    if not problems:
        problems += check_probabilities(probs, probs_name, loss, student_logits.shape)
    return problems


def batch_mean(per_sample: Tensor, weight: Tensor | None) -> Tensor:
    """Mean over the batch of ``weight * per_sample`` [N] -> scalar.

    Normalised by N, not by ``weight.sum()``: a weight of 0 removes a sample's
    contribution without raising the others', so a batch's loss scale does not
    depend on how many of its samples are trusted.
    """
    if weight is None:
        return per_sample.mean()
    return (weight.to(per_sample.dtype) * per_sample).mean()


def teacher_log_probs(teacher_probs: Tensor, student_logits: Tensor) -> Tensor:
    """log(teacher_probs) [N,C] in the wider of the two inputs' dtypes, with
    zero probabilities raised to that dtype's smallest normal number so every
    log stays finite.

    A bridged teacher may put exactly 0 on a target class it cannot see; -inf
    there would make reverse KL infinite and gradients NaN. The change is below
    rounding for every other use (log of that number is about -87 in float32).
    Teachers cached in float16 are thus compared in the student's precision.
    """
    probs = teacher_probs.to(torch.promote_types(teacher_probs.dtype, student_logits.dtype))
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def kl_per_sample(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) = sum_c p_c (log p_c - log q_c) [N], from log-probabilities [N,C]."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)
