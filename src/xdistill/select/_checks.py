"""Validation shared by every transferability metric.

One pass over everything a metric was given, so that a user sees every problem
at once in a single :class:`~xdistill.errors.XDistillError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdistill.errors import XDistillError, join_problems

PROBS_SUM_TOLERANCE = 1e-3  # how far a row of teacher probabilities may sum from 1


@dataclass(frozen=True)
class MetricInputs:
    """Inputs after validation: float64 arrays and ``labels`` as intp in 0..C-1."""

    labels: np.ndarray
    num_classes: int
    features: np.ndarray | None = None
    probs: np.ndarray | None = None
    source_labels: np.ndarray | None = None


def option_problems(
    metric: str, name: str, value, *, minimum: float, integer: bool = False, strict: bool = False
) -> list[str]:
    """Problems with one numeric option of ``metric`` (``minimum`` inclusive unless ``strict``)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    in_range = isinstance(value, kinds) and not isinstance(value, bool) and (
        value > minimum if strict else value >= minimum
    )
    if in_range:
        return []
    kind = "an integer" if integer else "a float"
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    return [f"The '{name}' of {metric} must be {kind} {bound}. Got {value!r}."]


def _preview(values, limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in list(values)[:limit])
    return f"[{shown}, ...]" if len(values) > limit else f"[{shown}]"


def _label_problems(labels: np.ndarray, name: str, contiguous: bool) -> list[str]:
    if labels.ndim != 1:
        return [f"{name} must be a 1-D array of class ids. Got shape {labels.shape}. Pass {name}.ravel()."]
    if not np.issubdtype(labels.dtype, np.integer):
        return [
            f"{name} must be integers. Got dtype {labels.dtype}. "
            f"Convert whole-number values with {name}.astype(int)."
        ]
    if labels.size == 0:
        return [f"{name} must not be empty. Got 0 samples."]
    if not contiguous:
        return []
    classes = np.unique(labels)
    problems = []
    if classes[0] != 0 or classes[-1] != len(classes) - 1:
        problems.append(
            f"{name} must be contiguous integers 0..C-1. Got classes {_preview(classes)}. "
            f"Remap them with np.unique({name}, return_inverse=True)."
        )
    if len(classes) < 2:
        problems.append(
            f"{name} must contain at least 2 classes. Got only class {_preview(classes)}. "
            "A transferability score compares classes; give samples of at least two."
        )
    return problems


def class_size_reasons(labels: np.ndarray, min_per_class: int = 1, min_in_one_class: int = 1) -> list[str]:
    """Why ``labels [N]`` (integer ids 0..C-1) have too few samples for a metric
    that needs ``min_per_class`` samples of every class and ``min_in_one_class``
    samples of at least one class; each reason reads after the metric's name."""
    counts = np.bincount(labels)
    reasons = []
    small = np.flatnonzero(counts < min_per_class)
    if len(small):
        reasons.append(
            f"needs at least {min_per_class} labeled samples of every class; classes {_preview(small)} "
            f"have {_preview(counts[small])}"
        )
    if counts.max() < min_in_one_class:
        reasons.append(
            f"needs a class with at least {min_in_one_class} labeled samples (a held-out sample is only "
            f"predictable from others of its class); every class has at most {counts.max()}"
        )
    return reasons


def matrix_problems(values: np.ndarray, name: str) -> list[str]:
    if values.ndim != 2:
        return [
            f"{name} must be a 2-D array [N, D]. Got shape {values.shape}. "
            f"Reshape with {name}.reshape(len({name}), -1)."
        ]
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        return [f"{name} must be numeric. Got dtype {values.dtype}."]
    if values.shape[1] == 0:
        return [f"{name} must have at least one column. Got shape {values.shape}."]
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad_rows):
        return [
            f"{name} must be finite. Got NaN or infinite values in {len(bad_rows)} "
            f"{'row' if len(bad_rows) == 1 else 'rows'} {_preview(bad_rows)}. Remove or impute those samples."
        ]
    return []


def feature_problems(features: np.ndarray, name: str = "features") -> list[str]:
    """matrix_problems, and features that are all zero (nothing to score)."""
    problems = matrix_problems(features, name)
    if not problems and not np.any(features):
        problems.append(f"{name} are all zero. Check that the teacher's feature hook reads the intended module.")
    return problems


def _probs_problems(probs: np.ndarray) -> list[str]:
    problems = matrix_problems(probs, "probs")
    if problems:
        return problems
    if (probs < 0).any():
        problems.append(
            f"probs must be non-negative. Got a minimum of {probs.min():.4g}. "
            "Pass softmax probabilities, not logits: scipy.special.softmax(logits, axis=1)."
        )
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > PROBS_SUM_TOLERANCE)
    if len(off):
        problems.append(
            f"each row of probs must sum to 1 (tolerance {PROBS_SUM_TOLERANCE:g}). Got {len(off)} rows "
            f"off, with sums from {sums[off].min():.4g} to {sums[off].max():.4g}. "
            "Pass softmax probabilities: scipy.special.softmax(logits, axis=1)."
        )
    return problems


def check_metric_inputs(
    metric: str,
    labels,
    *,
    features=None,
    probs=None,
    source_labels=None,
    parameter_problems: list[str] | None = None,
    min_per_class: int = 1,
    min_in_one_class: int = 1,
) -> MetricInputs:
    """Validate what ``metric`` was given and return it as float64 / intp arrays.

    ``labels [N]`` must be integer class ids 0..C-1 with at least 2 classes,
    ``min_per_class`` samples of every class and ``min_in_one_class`` samples of
    at least one class (the metric's declared needs, see ``MetricSpec``). ``features [N, D]`` must be finite; ``probs [N, Cs]``
    must be finite, non-negative rows summing to 1; ``source_labels [N]`` are
    integer ids of any values. Every given array must have N rows.
    ``parameter_problems`` are the metric's own option problems, reported in the
    same error. Raises XDistillError listing every problem found.
    """
    problems = list(parameter_problems or [])
    labels = np.asarray(labels)
    label_problems = _label_problems(labels, "labels", contiguous=True)
    problems += label_problems
    if not label_problems:
        problems += [
            f"{metric} {reason}. Label more samples, or use a metric that runs on one label per class, e.g. gbc."
            for reason in class_size_reasons(labels, min_per_class, min_in_one_class)
        ]
    arrays = {"features": features, "probs": probs, "source_labels": source_labels}
    arrays = {name: np.asarray(value) for name, value in arrays.items() if value is not None}
    for name, values in arrays.items():
        if name == "features":
            problems += feature_problems(values)
        elif name == "probs":
            problems += _probs_problems(values)
        else:
            problems += _label_problems(values, name, contiguous=False)
        if values.ndim >= 1 and labels.ndim == 1 and len(values) != len(labels):
            problems.append(
                f"{name} and labels must have the same number of samples. "
                f"Got {len(values)} rows of {name} and {len(labels)} labels."
            )
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid inputs to the '{metric}' metric"))
    as_float = {
        name: np.asarray(values, dtype=np.float64)
        for name, values in arrays.items()
        if name != "source_labels"
    }
    return MetricInputs(
        labels=labels.astype(np.intp),
        num_classes=int(labels.max()) + 1,
        source_labels=arrays["source_labels"].astype(np.intp) if "source_labels" in arrays else None,
        **as_float,
    )
