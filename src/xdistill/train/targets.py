"""Target-space teacher predictions that distillation consumes.

Each chosen teacher's cached outputs go through its bridge head (fitted on
the labeled split, see :mod:`xdistill.select.bridge`) to give calibrated
probabilities over the target classes on every split and cached view. The
methods then combine them:

- ``nearest``: the top-ranked teacher alone;
- ``weighted``: the ranking's similarity weights w_t over its top teachers,
  mixed per sample (``mix``): ``gated`` (default) hands each sample the
  prediction of the teacher with the largest w_t * max_c p_t(c | x), the
  similarity prior times the calibrated teacher's confidence on that sample;
  ``average`` takes sum_t w_t p_t;
- ``ensemble``: the uniform mean over every teacher (an ablation);
- ``partition``: per sample, the teacher most confident on it.

Reliability: the combined out-of-fold predictions on the labeled split give
the accuracy the distillation targets would have on held-out labels. The
distillation term is scaled by ``(acc - 1/C) / (1 - 1/C)`` (0 for chance-level
targets, 1 for perfect ones), so weak teachers cannot drag a student below
what its labels alone teach it. Only samples that were held out count; with a
single label in every class none can be (see :mod:`xdistill.select.bridge`),
the reliability is unknown (None) and the term is not scaled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from xdistill.cache.extract import TeacherCache
from xdistill.data.task import Task
from xdistill.errors import XDistillError
from xdistill.select.bridge import BridgeHead, bridge_inputs, fit_bridge
from xdistill.select.rank import Ranking
from xdistill.teachers.base import Teacher

TEACHER_METHODS = ("nearest", "weighted", "ensemble", "partition")
# Averaging teachers that disagree gives flat targets, and students distilled from them were weaker
# than from one confident teacher per sample (docs/benchmarks.md), so 'weighted' gates by default.
MIXES = ("gated", "average")
DEFAULT_MIX = "gated"


def combine(probs: np.ndarray, method: str, weights: np.ndarray, mix: str = DEFAULT_MIX) -> np.ndarray:
    """[T, N, C] per-teacher probabilities -> [N, C] targets; ``mix`` applies to 'weighted' only."""
    if method == "nearest":
        return probs[int(np.argmax(weights))]
    if method == "weighted":
        if mix == "average":
            return np.tensordot(weights / weights.sum(), probs, axes=1)
        if mix != "gated":
            raise XDistillError(f"Unknown mix '{mix}' for 'weighted'. Available: {', '.join(MIXES)}.")
        return _most_confident(probs, prior=weights)
    if method == "ensemble":
        return probs.mean(axis=0)
    if method == "partition":
        return _most_confident(probs, prior=np.ones(len(probs)))
    raise XDistillError(f"Unknown teacher method '{method}'. Available: {', '.join(TEACHER_METHODS)}.")


def _most_confident(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """[T, N, C] -> [N, C]: each sample's row from the teacher with the largest prior_t * max_c p_t(c)."""
    gate = prior[:, None] * probs.max(axis=2)  # [T, N]
    return probs[gate.argmax(axis=0), np.arange(probs.shape[1])]


def held_out_accuracy(oof: Sequence[np.ndarray | None], method: str, weights: np.ndarray, mix: str,
                      labels: np.ndarray) -> float | None:
    """Accuracy of the combined out-of-fold predictions ([N, C] per teacher) over
    the samples every head held out (finite rows); None when there are none."""
    if any(o is None for o in oof):
        return None
    combined = combine(np.stack(oof), method, weights, mix)
    scored = np.isfinite(combined).all(axis=1)
    return float((combined[scored].argmax(1) == labels[scored]).mean()) if scored.any() else None


def teachers_for(method: str, ranking: Ranking) -> list[str]:
    """The teachers a method draws on."""
    if method == "nearest":
        return [ranking.top]
    if method == "weighted":
        return [t.name for t in ranking.ordered() if t.weight > 0]
    return [t.name for t in ranking.teachers]


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
    mix: str = DEFAULT_MIX  # how 'weighted' mixes its teachers (see combine)

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
        return out

    def summary(self) -> dict:
        return {
            "method": self.method, **({"mix": self.mix} if self.method == "weighted" else {}),
            "teachers": {n: {"weight": float(w), "bridge_C": self.heads[n].C, "temperature": self.heads[n].temperature,
                             "cv_accuracy": self.heads[n].cv_accuracy,
                             "reliability_estimate": self.heads[n].reliability_estimate}
                         for n, w in zip(self.names, self.weights)},
            "reliability": self.reliability,
        }


def build_targets(task: Task, teachers: Sequence[Teacher], cache: TeacherCache, ranking: Ranking, method: str,
                  views: int = 0, keep_features: bool = False, seed: int = 0,
                  heads: dict[str, BridgeHead] | None = None, mix: str = DEFAULT_MIX,
                  log: Callable[[str], None] | None = None) -> TeacherTargets:
    """Bridge the method's teachers to the target labels and combine their predictions."""
    names = teachers_for(method, ranking)
    by_name = {t.name: t for t in teachers}
    weights_by_name = ranking.weights
    if method == "weighted":
        weights = np.array([weights_by_name[n] for n in names], dtype=np.float64)
    elif method == "nearest":
        weights = np.ones(1)
    else:
        weights = np.full(len(names), 1.0 / len(names))
    weights = weights / weights.sum()
    heads = dict(heads or {})
    split_keys = ["labeled", "unlabeled", "test"] + [f"unlabeled@{v}" for v in range(1, views + 1)]
    per_teacher: dict[str, list[np.ndarray]] = {k: [] for k in split_keys}
    features: dict[str, dict[str, np.ndarray]] = {}
    oof = []
    for name in names:
        teacher = by_name[name]
        outs = {"labeled": cache.load(teacher, task.labeled), "unlabeled": cache.load(teacher, task.unlabeled),
                "test": cache.load(teacher, task.test)}
        for v in range(1, views + 1):
            outs[f"unlabeled@{v}"] = cache.load(teacher, task.unlabeled, v)
        if name not in heads:
            x_lab, source = bridge_inputs(outs["labeled"].features, outs["labeled"].logits)
            x_unl, _ = bridge_inputs(outs["unlabeled"].features, outs["unlabeled"].logits)
            heads[name] = fit_bridge(x_lab, task.labeled.y, task.num_classes, source=source, seed=seed, fit_inputs=x_unl)
        head = heads[name]
        oof.append(head.oof_probs)
        for key, out in outs.items():
            per_teacher[key].append(head.predict_proba(bridge_inputs(out.features, out.logits)[0]))
        if keep_features and outs["labeled"].features is not None:
            features[name] = {k: o.features for k, o in outs.items()}
    stacked = {k: np.stack(v) for k, v in per_teacher.items()}
    combined = {k: combine(v, method, weights, mix).astype(np.float32) for k, v in stacked.items()}
    reliability = held_out_accuracy(oof, method, weights, mix, task.labeled.y)
    targets = TeacherTargets(method, names, weights, heads, stacked, combined, reliability, features, mix)
    if log is not None:
        sources = ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights)) if len(names) <= 4 else f"{len(names)} teachers"
        how = f" ({mix})" if method == "weighted" else ""
        held_out = "unknown (one label per class)" if reliability is None else f"{reliability:.3f}"
        log(f"{method}{how} targets from {sources}; held-out labeled accuracy {held_out}")
    return targets
