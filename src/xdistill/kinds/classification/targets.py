"""Target-space teacher predictions that distillation consumes.

Each chosen teacher's cached outputs go through its bridge head (fitted on
the labeled split, see :mod:`xdistill.select.bridge`) to give calibrated
probabilities over the target classes on every split and cached view. The
method's declaration then says which teachers it draws on and how their
predictions mix (``Method.choose`` and ``Method.combine``; the mixing rules
themselves live in :func:`most_confident` and :func:`weighted_average`).

Reliability: the combined out-of-fold predictions on the labeled split give
the accuracy the distillation targets would have on held-out labels. The
distillation term is scaled by ``(acc - 1/C) / (1 - 1/C)`` (0 for chance-level
targets, 1 for perfect ones), so weak teachers cannot drag a student below
what its labels alone teach it. Only samples that were held out count; with a
single label in every class none can be (see :mod:`xdistill.select.bridge`),
the reliability is unknown (None) and the term is not scaled.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xdistill.data.lazy import is_lazy, release_pages
from xdistill.data.task import Task
from xdistill.kinds.classification.pool import POOL_ALPHA, PoolWeights, pool_weights
from xdistill.kinds.classification.prepare import PreparedTeachers
from xdistill.select.bridge import BridgeHead
from xdistill.train.config import DistillConfig
from xdistill.train.method import Method


def most_confident(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """[T, N, C] -> [N, C]: each sample's row from the teacher with the largest prior_t * max_c p_t(c)."""
    gate = prior[:, None] * probs.max(axis=2)  # [T, N]
    return probs[gate.argmax(axis=0), np.arange(probs.shape[1])]


def every_teacher(ranking) -> tuple[list[str], np.ndarray]:
    """Every ranked teacher with uniform weights (for methods that do not use the similarity weights)."""
    names = [t.name for t in ranking.teachers]
    return names, np.full(len(names), 1.0 / len(names))


def weighted_average(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[T, N, C] -> [N, C]: sum_t w_t p_t with the weights normalised to sum to 1."""
    return np.tensordot(weights / weights.sum(), probs, axes=1)


def held_out_combined(oof: list[np.ndarray | None], method: Method, weights: np.ndarray,
                      config: DistillConfig) -> np.ndarray | None:
    """The method's combination [M, C] of the out-of-fold predictions ([N, C] per teacher) on the M samples every
    head held out (finite rows), or None when there are none."""
    if any(o is None for o in oof):
        return None
    combined = method.combine(np.stack(oof), weights, config)
    scored = np.isfinite(combined).all(axis=1)
    return combined[scored] if scored.any() else None


def held_out_accuracy(oof: list[np.ndarray | None], method: Method, weights: np.ndarray, config: DistillConfig,
                      labels: np.ndarray) -> float | None:
    """Accuracy of the method's combination of the out-of-fold predictions ([N, C] per teacher) over
    the samples every head held out (finite rows); None when there are none."""
    if any(o is None for o in oof):
        return None
    combined = method.combine(np.stack(oof), weights, config)
    scored = np.isfinite(combined).all(axis=1)
    return float((combined[scored].argmax(1) == labels[scored]).mean()) if scored.any() else None


def confident_held_out_accuracy(oof: list[np.ndarray | None], method: Method, weights: np.ndarray,
                                config: DistillConfig, labels: np.ndarray, confidence: float) -> tuple[float | None, int]:
    """Accuracy of the method's combination of the out-of-fold predictions ([N, C] per teacher) over the held-out
    samples whose top probability reaches ``confidence``, and how many there are; (None, 0) when none."""
    if any(o is None for o in oof):
        return None, 0
    combined = method.combine(np.stack(oof), weights, config)
    chosen = np.isfinite(combined).all(axis=1)
    chosen[chosen] = combined[chosen].max(axis=1) >= confidence
    if not chosen.any():
        return None, 0
    return float((combined[chosen].argmax(1) == labels[chosen]).mean()), int(chosen.sum())


COMBINE_ROWS = 65_536  # rows of a split combined at a time (bounds the combination's temporary memory)


class ScratchFolder:
    """A temporary folder, removed with everything in it when this object is dropped or the process ends."""

    def __init__(self, prefix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.path), True)


@dataclass
class TargetArrays:
    """Where the target-space predictions of one run live: ``per_teacher[split]`` [T, N, C] float32.

    A pool that is read on demand (a memory-mapped ``x.npy``, an image folder) can be larger than memory,
    so its arrays (the unlabeled split and its views) are float32 files in a temporary folder, memory-mapped,
    removed when the targets are dropped or the process ends; training reads the rows of each batch and
    releases the pages again. Every other split is held in memory.
    """

    per_teacher: dict[str, np.ndarray]
    scratch: ScratchFolder | None = None

    @classmethod
    def for_task(cls, task: Task, teachers: int, views: int) -> TargetArrays:
        on_disk = is_lazy(task.unlabeled.x)
        scratch = ScratchFolder("xdistill-targets-") if on_disk else None
        sizes = {"labeled": len(task.labeled), "unlabeled": len(task.unlabeled), "test": len(task.test)}
        sizes.update({f"unlabeled@{v}": len(task.unlabeled) for v in range(1, views + 1)})
        per_teacher = {key: cls._array(scratch, key, (teachers, n, task.num_classes)) for key, n in sizes.items()}
        return cls(per_teacher, scratch)

    @staticmethod
    def _array(scratch, key: str, shape: tuple[int, ...]) -> np.ndarray:
        if scratch is None or not key.startswith("unlabeled"):
            return np.empty(shape, dtype=np.float32)
        path = scratch.path / f"{key.replace('@', '-view')}-{len(shape)}d.npy"
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)

    def combine(self, rule: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
        """``split -> rule(per_teacher[split])`` [N, C] float32, computed :data:`COMBINE_ROWS` rows at a time
        (a method's combination works row by row: each sample's target from that sample's predictions)."""
        out = {}
        for key, probs in self.per_teacher.items():
            combined = out[key] = self._array(self.scratch, key, probs.shape[1:])
            for start in range(0, probs.shape[1], COMBINE_ROWS):
                combined[start:start + COMBINE_ROWS] = rule(probs[:, start:start + COMBINE_ROWS])
                release_pages(probs)
                release_pages(combined)
        return out


def teacher_class_means(features: dict[str, np.ndarray], labels: np.ndarray, combined_unlabeled: np.ndarray,
                        num_classes: int) -> np.ndarray:
    """[C, D] a teacher's mean feature of each target class, for the ND loss (:mod:`xdistill.losses.nd`).

    The paper averages the teacher's features over each class's training samples. With few labels, the
    unlabeled pool counts too, each sample in every class by its combined target's probability:
    mu_c = (sum_labeled [y = c] f + sum_unlabeled p(c | x) f) / (its total weight)."""
    membership = np.concatenate([np.eye(num_classes)[labels], combined_unlabeled]).astype(np.float64)
    stacked = np.concatenate([features["labeled"], features["unlabeled"]]).astype(np.float64)
    return (membership.T @ stacked / membership.sum(axis=0)[:, None]).astype(np.float32)


@dataclass
class TeacherTargets:
    """Per-teacher target-space probabilities and the method's combination."""

    method: str
    names: list[str]
    weights: np.ndarray  # [T], the mixing weights (sum to 1)
    heads: dict[str, BridgeHead]
    per_teacher: dict[str, np.ndarray]  # split -> [T, N, C]; unlabeled views as "unlabeled@v"
    combined: dict[str, np.ndarray] = field(default_factory=dict)  # split -> [N, C]
    reliability: float | None = 1.0  # held-out labeled accuracy of the combined targets; None: no held-out label
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # teacher -> split -> [N, D]
    mix: str = ""  # how a multi-teacher method mixed its teachers, when it has a choice (config 'mix')
    pool: PoolWeights | None = None  # per-sample weights of the unlabeled pool (config 'pool_weights'); None: off
    class_means: dict[str, np.ndarray] = field(default_factory=dict)  # teacher -> [C, D] (feature distillation)
    scratch: ScratchFolder | None = None  # the folder holding the pool's arrays as files (see TargetArrays), if any

    def scale(self, num_classes: int) -> float:
        chance = 1.0 / num_classes
        if self.reliability is None:
            return 1.0
        return float(np.clip((self.reliability - chance) / (1 - chance), 0.0, 1.0))

    def unlabeled(self, views: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Combined targets [B, C] for unlabeled samples ``index`` seen in views ``views``."""
        out = np.empty((len(index), self.combined["unlabeled"].shape[1]), dtype=np.float32)
        for v in np.unique(views):
            key = "unlabeled" if v == 0 else f"unlabeled@{v}"
            mask = views == v
            out[mask] = self.combined[key][index[mask]]
            release_pages(self.combined[key])
        return out

    def summary(self) -> dict:
        return {
            "method": self.method, **({"mix": self.mix} if self.mix else {}),
            "teachers": {n: {"weight": float(w), "bridge_C": self.heads[n].C,
                             "calibration_temperature": self.heads[n].calibration_temperature,
                             "cv_accuracy": self.heads[n].cv_accuracy,
                             "reliability_estimate": self.heads[n].reliability_estimate}
                         for n, w in zip(self.names, self.weights)},
            "reliability": self.reliability,
        }

    def pool_weight(self, index: np.ndarray) -> np.ndarray | None:
        """Weights [B] of unlabeled samples ``index`` (see :mod:`xdistill.kinds.classification.pool`); None: all 1."""
        return None if self.pool is None else self.pool.of(index)


def build_targets(task: Task, prepared: PreparedTeachers, method_name: str, method: Method, config: DistillConfig,
                  log: Callable[[str], None] | None = None) -> TeacherTargets:
    """Bridge the method's teachers to the target labels and combine their predictions."""
    names, weights = method.choose(prepared.ranking)
    weights = np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    views = config.views
    arrays = TargetArrays.for_task(task, len(names), views)
    stacked = arrays.per_teacher
    features: dict[str, dict[str, np.ndarray]] = {}
    oof = []
    for t, name in enumerate(names):
        oof.append(prepared.head(task, name).oof_probs)
        prepared.predictions(task, name, views, out={k: v[t] for k, v in stacked.items()})  # shard by shard
        if config.feature_weight > 0:
            outs = prepared.outputs(task, name, views)
            if outs["labeled"].features is not None:
                features[name] = {k: o.features for k, o in outs.items()}
    combined = arrays.combine(lambda probs: method.combine(probs, weights, config))
    reliability = held_out_accuracy(oof, method, weights, config, task.labeled.y)
    mix = config.mix if "mix" in method.options else ""
    pool = None
    if config.pool_weights:
        reference = held_out_combined(oof, method, weights, config)
        pool = pool_weights(None if reference is None else reference.max(axis=1), combined["unlabeled"].max(axis=1))
    class_means = {name: teacher_class_means(f, task.labeled.y, combined["unlabeled"], task.num_classes)
                   for name, f in features.items()}
    targets = TeacherTargets(method_name, names, weights, prepared.heads, stacked, combined, reliability, features, mix,
                             pool, class_means, scratch=arrays.scratch)
    if log is not None:
        sources = ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights)) if len(names) <= 4 else f"{len(names)} teachers"
        held_out = "unknown (one label per class)" if reliability is None else f"{reliability:.3f}"
        log(f"{method_name} targets from {sources}; held-out labeled accuracy {held_out}")
        if pool is not None and pool.polluted:
            log(f"unlabeled pool looks polluted ({pool.share_below:.0%} of it scores below the lowest "
                f"{POOL_ALPHA:.0%} of held-out labeled samples): down-weighting it per sample, mean weight "
                f"{float(pool.weights.mean()):.3f}")
    return targets
