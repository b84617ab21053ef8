"""Does a distilled student end below its best teacher, and why?

Every teacher method bridges each teacher to the target labels and scores it on
the test split (``metrics["teachers"]["teachers"][name]["test_accuracy"]``). A
student that ends below the best of them has lost what distillation was meant to
carry over. :func:`shortfall_causes` names the likely causes from the run's own
numbers, each by a fixed rule:

- ``capacity``: the student could not fit its training targets. Its final
  training loss is still high (at least ``HIGH_LOSS_FRACTION`` of the loss of a
  uniform guess, ln C) and has stopped falling (it fell less than
  ``PLATEAU_DROP`` over the last ``WINDOW`` epochs). When the teachers'
  parameter counts are given, the student must also be far smaller than the
  largest of them (at most ``SMALL_STUDENT_RATIO`` of it).
- ``epochs``: training stopped while the student was still improving. Its test
  accuracy rose by at least ``RISING_GAIN`` over the last ``WINDOW`` epochs and
  the last epoch is the best of them.
- ``teacher_weights``: the mixture under-used the best teacher. Several
  teachers were mixed and the best one's weight is below the uniform share
  1 / (number of teachers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Final training loss at or above this fraction of ln C (a uniform guess over C classes) counts as high.
HIGH_LOSS_FRACTION = 0.5
# A loss that fell by less than this fraction over the last WINDOW epochs has stopped falling.
PLATEAU_DROP = 0.05
# Epochs at the end of the curve that the rules look at.
WINDOW = 3
# Test accuracy gained over the last WINDOW epochs that counts as still rising (absolute, 0..1).
RISING_GAIN = 0.01
# A student at most this fraction of the largest teacher's parameters counts as far smaller.
SMALL_STUDENT_RATIO = 0.1

CAUSES = ("capacity", "epochs", "teacher_weights")
# How a report names each cause.
CAUSE_TITLES = {"capacity": "capacity", "epochs": "too few epochs", "teacher_weights": "teacher weights"}


@dataclass(frozen=True)
class Cause:
    """One likely cause of a shortfall: its name (one of CAUSES) and the numbers behind it, in words."""

    name: str
    evidence: str


@dataclass(frozen=True)
class Shortfall:
    """A student that ended below its best teacher on the test split."""

    student_accuracy: float
    teacher: str
    teacher_accuracy: float
    causes: list[Cause] = field(default_factory=list)

    @property
    def gap(self) -> float:
        return self.teacher_accuracy - self.student_accuracy


def teacher_accuracies(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Each bridged teacher's test accuracy on the target, by teacher name (empty for baselines)."""
    teachers = (metrics.get("teachers") or {}).get("teachers") or {}
    return {name: float(t["test_accuracy"]) for name, t in teachers.items()
            if isinstance(t, Mapping) and t.get("test_accuracy") is not None}


def _training_loss(record: Mapping[str, Any]) -> float | None:
    """The supervised cross-entropy of an epoch where logged, else its total loss."""
    train = record.get("train") or {}
    value = train.get("ce", train.get("loss"))
    return None if value is None else float(value)


def _capacity(metrics: Mapping[str, Any], curves: list, teacher_params: Mapping[str, int] | None) -> Cause | None:
    classes = len((metrics.get("test") or {}).get("per_class_accuracy") or [])
    losses = [loss for loss in (_training_loss(r) for r in curves[-WINDOW:]) if loss is not None]
    if classes < 2 or len(losses) < 2:  # one epoch cannot show that the loss stopped falling
        return None
    chance = math.log(classes)
    final, start = losses[-1], losses[0]
    if final < HIGH_LOSS_FRACTION * chance:
        return None
    if start > 0 and (start - final) / start >= PLATEAU_DROP:
        return None
    params = (metrics.get("cost") or {}).get("params")
    size = f"The student has {params:,} parameters" if isinstance(params, int) else "The student"
    if teacher_params:
        largest = max(teacher_params, key=lambda n: teacher_params[n])
        if not isinstance(params, int) or params > SMALL_STUDENT_RATIO * teacher_params[largest]:
            return None
        size += f", {params / teacher_params[largest]:.1%} of teacher '{largest}' ({teacher_params[largest]:,})"
    return Cause("capacity", f"{size}; its final training loss {final:.3g} is still {final / chance:.0%} of a "
                             f"uniform guess's ({chance:.3g}) and stopped falling. A larger student may fit the targets.")


def _epochs(curves: list) -> Cause | None:
    window = [r for r in curves[-WINDOW:] if (r.get("test") or {}).get("accuracy") is not None]
    if len(window) < 2:
        return None
    accuracy = [float(r["test"]["accuracy"]) for r in window]
    gain = accuracy[-1] - accuracy[0]
    if gain < RISING_GAIN or accuracy[-1] < max(accuracy):
        return None
    return Cause("epochs", f"Test accuracy was still rising: {accuracy[0]:.3f} at epoch {window[0].get('epoch')} to "
                           f"{accuracy[-1]:.3f} at epoch {window[-1].get('epoch')}, the last. More epochs may help.")


def _teacher_weights(metrics: Mapping[str, Any], best: str) -> Cause | None:
    teachers = (metrics.get("teachers") or {}).get("teachers") or {}
    weights = {n: float(t["weight"]) for n, t in teachers.items() if isinstance(t, Mapping) and t.get("weight") is not None}
    if len(weights) < 2 or best not in weights:
        return None
    share = 1.0 / len(weights)
    if weights[best] >= share:
        return None
    heaviest = max(weights, key=lambda n: weights[n])
    return Cause("teacher_weights", f"The best teacher '{best}' had weight {weights[best]:.3f} in the mixture, below "
                                    f"the uniform share {share:.3f}; '{heaviest}' had {weights[heaviest]:.3f}. "
                                    "The selection metric under-rated it: try another metric= or method=nearest.")


def shortfall_causes(metrics: Mapping[str, Any], best_teacher: str,
                     teacher_params: Mapping[str, int] | None = None) -> list[Cause]:
    """The likely causes, in CAUSES order, of a student ending below ``best_teacher``.

    metrics: a run's ``metrics.json``; teacher_params: teacher name -> parameter
    count, where known (runs do not record it). Returns [] when no rule applies.
    """
    curves = list(metrics.get("curves") or [])
    found = [_capacity(metrics, curves, teacher_params), _epochs(curves), _teacher_weights(metrics, best_teacher)]
    return [cause for cause in found if cause is not None]


def student_shortfall(metrics: Mapping[str, Any], teacher_params: Mapping[str, int] | None = None) -> Shortfall | None:
    """A :class:`Shortfall` when the run's student ended below its best single teacher; otherwise None."""
    accuracies = teacher_accuracies(metrics)
    student = (metrics.get("test") or {}).get("accuracy")
    if not accuracies or student is None:
        return None
    best = max(accuracies, key=lambda n: accuracies[n])
    if float(student) >= accuracies[best]:
        return None
    return Shortfall(float(student), best, accuracies[best], shortfall_causes(metrics, best, teacher_params))
