"""What a student costs: parameters, FLOPs per sample and CPU latency per sample.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts
matrix multiplies and convolutions only, with one multiply-add as 2 FLOPs:
a ``Linear(a, b)`` costs ``2 * a * b`` per sample. Normalisation,
activations, pooling, softmax and embedding look-ups count as 0.
"""

from __future__ import annotations

import contextlib
import inspect
import statistics
import time
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from xdistill.errors import XDistillError
from xdistill.students.build import STUDENT_INPUTS, STUDENTS, input_shape_problems


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not), shared tensors counted once."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype | None = None) -> int:
    """FLOPs of one forward pass on a single sample of ``input_shape`` (no batch axis).

    dtype: input dtype; default ``model.input_dtype`` if it has one (``torch.long``
    for text students), else float32. Runs in eval mode without gradients.
    """
    x = example_input(model, input_shape, batch_size=1, dtype=dtype)
    with evaluating(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def cpu_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    repeats: int = 20,
    warmup: int = 3,
    dtype: torch.dtype | None = None,
) -> float:
    """Median CPU time per sample in milliseconds, over ``repeats`` timed batches.

    Runs ``warmup`` untimed batches first, in eval mode under ``torch.inference_mode``,
    with the torch thread settings as they are.
    """
    problems = []
    for name, value, minimum in (("batch_size", batch_size, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int) or value < minimum:
            problems.append(f"{name} must be an int >= {minimum}. Got {value!r}.")
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        problems.append(f"the model must be on the CPU. Got parameters on {sorted(devices)}; call model.cpu() first.")
    if problems:
        raise XDistillError("Cannot time the model on CPU: " + " ".join(problems))
    x = example_input(model, input_shape, batch_size=batch_size, dtype=dtype)
    times = []
    with evaluating(model), torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0 / batch_size


def describe_students(input_shape: tuple[int, ...], num_classes: int, **common: object) -> list[dict]:
    """One row per student family that reads this input, built with its defaults.

    The input kind follows from ``input_shape``: (C, H, W) is an image; (L,) is
    token ids when ``vocab_size`` is among ``common``, else (D,) is a feature
    vector. Each knob in ``common`` goes to every family that has it.
    Rows: {"name", "summary", "params", "flops", "knobs": {knob: value used},
    "knob_help": {knob: one line}}.
    """
    kind = "image" if len(input_shape) == 3 else "tokens" if "vocab_size" in common else "vector"
    families = [family for _, family in STUDENTS.items() if kind in family.inputs]
    known = {knob for family in families for knob in family.knobs()}
    unknown = sorted(set(common) - known)
    if unknown:
        raise XDistillError(
            f"No {kind} student has the knob {', '.join(repr(k) for k in unknown)}. "
            f"Knobs of {kind} students: {', '.join(sorted(known)) or 'none'}."
        )
    rows = []
    with torch.random.fork_rng(devices=[]):
        for family in families:
            knobs = {
                k: common.get(k, default)
                for k, default in family.knobs().items()
                if k in common or default is not inspect.Parameter.empty
            }
            model = family.build(input_shape, num_classes, **knobs)
            rows.append(
                {
                    "name": family.name,
                    "summary": family.summary,
                    "params": count_params(model),
                    "flops": count_flops(model, input_shape),
                    "knobs": knobs,
                    "knob_help": family.knob_help(),
                }
            )
    return rows


def example_input(
    model: nn.Module, input_shape: tuple[int, ...], batch_size: int, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A batch [batch_size, *input_shape] for cost measurements (values do not matter).

    Token inputs are all id 1, so no position counts as padding.
    """
    problems = input_shape_problems(input_shape, tuple(STUDENT_INPUTS))
    if problems:
        raise XDistillError(f"Cannot build an example input: {problems[0]}")
    dtype = dtype or getattr(model, "input_dtype", torch.float32)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    shape = (batch_size, *input_shape)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    return torch.ones(shape, dtype=dtype, device=device)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore each submodule's mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
