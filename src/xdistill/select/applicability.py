"""Which selection metrics can run on a task, and which one ranks the teachers.

A metric that cannot be computed (the teacher lacks the output it needs, or
the labels have too few samples per class, see ``MetricSpec``) is reported as
not applicable with its reason: a null score and a note in the ranking. The
ranking metric is treated differently by who chose it. The default falls back
along ``FALLBACK_ORDER`` to the first metric that runs, and says so; a metric
the user named is not replaced: when it runs for no teacher, that is an error
saying why and which metrics can run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xdistill.errors import XDistillError
from xdistill.select._checks import class_size_reasons
from xdistill.select.metrics import METRICS

# Ranking quality measured on the demo targets (docs/selection.md, mean Kendall tau with
# the teachers' bridged accuracy): gbc 0.85, knn 0.78, hscore 0.76, hscore_regularized 0.74,
# logme 0.74, leep 0.48, nce 0.47, transrate -0.02; linear_probe_accuracy (then a logistic probe) ranked with
# logme against distilled students and costs more, so it comes after it.
FALLBACK_ORDER = (
    "gbc", "knn_loo_accuracy", "hscore", "hscore_regularized", "logme",
    "linear_probe_accuracy", "leep", "nce", "transrate",
)  # fmt: skip


NEEDS_TEXT = {"features": "the teacher's features", "probs": "the teacher's class probabilities (logits)"}


def not_applicable_reason(name: str, labels, has_features: bool = True, has_probs: bool = True) -> str | None:
    """Why the metric ``name`` cannot be computed on these ``labels [N]``
    (integer ids 0..C-1) for a teacher that gives features (``has_features``)
    and probabilities (``has_probs``), or None when it can.

    Checks what the metric declares it needs (``MetricSpec``): the teacher's
    features or probabilities, and the labeled samples per class. Problems with
    the values themselves (NaN, bad probabilities) are not reasons: computing
    the metric reports them as errors.
    """
    spec = METRICS.get(name)
    if not (has_features if spec.needs == "features" else has_probs):
        return f"needs {NEEDS_TEXT[spec.needs]}, which the teacher does not give"
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        return None
    reasons = class_size_reasons(labels, spec.min_per_class, spec.min_in_one_class)
    return "; ".join(reasons) if reasons else None


@dataclass(frozen=True)
class MetricChoice:
    """The metric that ranks, and a one-line note on why (empty when nothing needs saying)."""

    metric: str
    note: str = ""


def teacher_inputs(features, logits) -> tuple[bool, bool]:
    """(has_features, has_probs) of a teacher's cached outputs."""
    return features is not None, logits is not None


def _reason_for_all(name: str, labels: np.ndarray, inputs: Sequence[tuple[bool, bool]]) -> str | None:
    """Why ``name`` runs for none of the teachers with ``inputs``, or None when it runs for some."""
    label_reason = not_applicable_reason(name, labels)
    if label_reason is not None:
        return label_reason
    if any(not_applicable_reason(name, labels, *given) is None for given in inputs):
        return None
    needs = NEEDS_TEXT[METRICS.get(name).needs].replace("the teacher's", "a teacher's")
    return f"needs {needs}, which no teacher of the zoo gives"


def _single_sample_note(name: str, labels: np.ndarray) -> str:
    counts = np.bincount(labels)
    single = int(np.sum(counts == 1))
    text = METRICS.get(name).single_sample_class
    if not single or not text:
        return ""
    which = "every class has" if single == len(counts) else f"{single} of {len(counts)} classes have"
    return f"{which} one labeled sample: {name} {text}"


def choose_ranking_metric(requested: str, labels, inputs: Sequence[tuple[bool, bool]], fallback: bool,
                          candidates: Sequence[str] = FALLBACK_ORDER) -> MetricChoice:
    """The metric that ranks teachers with outputs ``inputs`` ((has_features,
    has_probs) per teacher) on ``labels [N]``.

    ``requested`` ranks when it runs for at least one teacher. Otherwise, with
    ``fallback`` (the user kept the default), the first of ``candidates`` that
    runs ranks and the note says why; without it, XDistillError names the
    reason and the metrics that can run.
    """
    labels = np.asarray(labels)
    why = _reason_for_all(requested, labels, inputs)
    if why is None:
        return MetricChoice(requested, _single_sample_note(requested, labels))
    runnable = [m for m in METRICS.names() if _reason_for_all(m, labels, inputs) is None]
    if not fallback:
        can = ", ".join(runnable) if runnable else "none"
        raise XDistillError(
            f"The ranking metric '{requested}' cannot run on this task: it {why}. "
            f"Metrics that can: {can}. Choose one with metric=NAME (--metric NAME for xdistill rank)."
        )
    for name in candidates:
        if name in runnable:
            note = f"{requested} {why}; ranked by {name}, the next metric of the fallback order that runs"
            extra = _single_sample_note(name, labels)
            return MetricChoice(name, f"{note} ({extra})" if extra else note)
    raise XDistillError(
        f"No selection metric can rank these teachers: '{requested}' {why}, and none of "
        f"{', '.join(candidates)} runs either. Give teachers that output features or logits."
    )


def not_applicable_notes(reasons: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One note per reason, from ``reasons[teacher][metric]``: a reason shared
    by every teacher is written once ("every teacher: ..."), others per teacher."""
    teachers = list(reasons)
    grouped: dict[str, dict[str, list[str]]] = {}  # reason -> metric -> teachers
    for teacher, by_metric in reasons.items():
        for metric, reason in by_metric.items():
            grouped.setdefault(reason, {}).setdefault(metric, []).append(teacher)
    notes = []
    for reason, by_metric in grouped.items():
        everyone = [m for m, ts in by_metric.items() if len(ts) == len(teachers)]
        if everyone:
            notes.append(f"every teacher: {', '.join(everyone)} not applicable ({reason}).")
        for teacher in teachers:
            some = [m for m, ts in by_metric.items() if m not in everyone and teacher in ts]
            if some:
                notes.append(f"{teacher}: {', '.join(some)} not applicable ({reason}).")
    return notes
