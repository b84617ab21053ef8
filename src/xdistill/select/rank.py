"""Score every teacher of a zoo on a target task from its cached outputs,
rank them, and turn the scores into teacher weights.

Scores use the labeled split only (the labels are what the metrics need);
features are first put on a common footing by :func:`prepare_features`,
fitted on the labeled and unlabeled features together (no labels involved),
so teachers of different feature dimension and scale compare fairly. On a
large pool, the unlabeled side is a seeded sample of
``SelectionConfig.unlabeled_sample`` samples (see
:func:`xdistill.select.config.unlabeled_positions`), read from the cache
shard by shard, so ranking's time and memory do not grow with the pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import softmax

from xdistill.cache.extract import TeacherCache
from xdistill.cache.store import CachedOutputs
from xdistill.data.task import Task
from xdistill.errors import XDistillError
from xdistill.select.applicability import (
    FALLBACK_ORDER,
    choose_ranking_metric,
    not_applicable_notes,
    not_applicable_reason,
    teacher_inputs,
)
from xdistill.select.config import AUTO_METRIC, SelectionConfig, unlabeled_positions
from xdistill.select.metrics import METRICS, compute_metric
from xdistill.select.prepare import prepare_features
from xdistill.select.weights import rank_order, teacher_weights
from xdistill.teachers.base import Teacher


@dataclass
class TeacherRanking:
    name: str
    domain: str
    architecture: str
    scores: dict[str, float | None]
    rank: int | None
    weight: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "domain": self.domain, "architecture": self.architecture,
                "scores": self.scores, "rank": self.rank, "weight": self.weight}


@dataclass
class Ranking:
    task: str
    metric: str
    prepare: str
    prepare_dim: int
    weight_temperature: float
    top_k: int
    teachers: list[TeacherRanking]
    notes: list[str] = field(default_factory=list)
    metric_requested: str = ""  # the configured metric; differs from 'metric' after a fallback
    metric_note: str = ""  # why 'metric' ranks, when that needs saying (a fallback, few labels)

    @property
    def weights(self) -> dict[str, float]:
        return {t.name: t.weight for t in self.teachers}

    def ordered(self) -> list[TeacherRanking]:
        return sorted(self.teachers, key=lambda t: (t.rank is None, t.rank or 0))

    @property
    def top(self) -> str:
        return self.ordered()[0].name

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "prepare": self.prepare, "prepare_dim": self.prepare_dim,
                "weight_temperature": self.weight_temperature, "top_k": self.top_k,
                "teachers": [t.to_json() for t in self.ordered()], "notes": self.notes,
                "metric_requested": self.metric_requested or self.metric, "metric_used": self.metric,
                "metric_note": self.metric_note}


def teacher_probs(outputs: CachedOutputs) -> np.ndarray | None:
    """Softmax of a teacher's logits [N, C_teacher], or None when it has none."""
    if outputs.logits is None:
        return None
    return softmax(outputs.logits.astype(np.float64), axis=1)


def check_metric_names(names: Sequence[str]) -> None:
    for name in names:
        METRICS.get(name)


def score_teacher(labeled: CachedOutputs, unlabeled: CachedOutputs | None, labels: np.ndarray,
                  metrics: Sequence[str], selection: SelectionConfig) -> tuple[dict[str, float | None], dict[str, str]]:
    """Every metric's score for one teacher (None where undefined for it), and
    the reason for each None."""
    features = reference = None
    if labeled.features is not None:
        pool = labeled.features if unlabeled is None or unlabeled.features is None else \
            np.concatenate([labeled.features, unlabeled.features])
        prepared = prepare_features(pool.astype(np.float64), method=selection.prepare, dim=selection.prepare_dim)
        features, reference = prepared[: len(labeled.features)], prepared[len(labeled.features):]
    probs = teacher_probs(labeled)
    scores: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    unlabeled_features = reference if reference is not None and len(reference) else None
    for name in metrics:
        reason = not_applicable_reason(name, labels, *teacher_inputs(features, probs))
        value = None if reason else compute_metric(name, features=features, probs=probs, labels=labels,
                                                   reference_features=unlabeled_features)
        scores[name] = None if value is None or not math.isfinite(value) else float(value)
        if scores[name] is None:
            reasons[name] = reason or "undefined on these inputs"
    return scores, reasons


def rank_teachers(task: Task, teachers: Sequence[Teacher], cache: TeacherCache,
                  selection: SelectionConfig | None = None, log: Callable[[str], None] | None = None) -> Ranking:
    """Score, rank and weight the teachers from the cache (running only missing teachers).

    A metric that cannot run scores None with a note. The default metric ``auto`` ranks by the first
    metric of applicability.FALLBACK_ORDER that runs on these labels and teachers, and says why when it
    is not the first; a metric chosen by name that runs for no teacher is an error (see
    choose_ranking_metric). A teacher's domain and architecture come from its zoo entry (``teacher.spec``).
    """
    selection = selection or SelectionConfig()
    metrics = list(selection.metrics) if selection.metrics else METRICS.names()
    automatic = selection.metric == AUTO_METRIC
    requested = FALLBACK_ORDER[0] if automatic else selection.metric
    check_metric_names([requested, *metrics])
    labels = task.labeled.y
    inputs = [teacher_inputs(o.features, o.logits) for o in (cache.load(t, task.labeled) for t in teachers)]
    choice = choose_ranking_metric(requested, labels, inputs, automatic)
    metric = choice.metric
    if metric not in metrics:
        metrics = [metric, *metrics]
    rows = []
    reasons = {}
    sample = unlabeled_positions(len(task.unlabeled), selection.unlabeled_sample)
    for teacher in teachers:
        labeled = cache.load(teacher, task.labeled)
        unlabeled = cache.load_rows(teacher, task.unlabeled, sample)
        scores, reasons[teacher.name] = score_teacher(labeled, unlabeled, labels, metrics, selection)
        spec = getattr(teacher, "spec", None)
        rows.append(TeacherRanking(teacher.name, getattr(spec, "domain", ""), getattr(spec, "architecture", ""),
                                   scores, None, 0.0))
    notes = not_applicable_notes(reasons)
    chosen = {r.name: r.scores[metric] for r in rows}
    if all(v is None for v in chosen.values()):
        raise XDistillError(f"The metric '{metric}' is undefined for every teacher ({notes[0] if notes else ''}). "
                            "Choose a metric that uses features, e.g. --metric logme.")
    ranks = rank_order(chosen)
    weights = teacher_weights(chosen, selection.weight_temperature, selection.top_k)
    for row in rows:
        row.rank, row.weight = ranks[row.name], weights[row.name]
    ranking = Ranking(task.name, metric, selection.prepare, selection.prepare_dim, selection.weight_temperature,
                      selection.top_k, rows, notes, selection.metric, choice.note)
    if log is not None:
        log(f"ranked {len(rows)} teachers by {metric}: top is {ranking.top}"
            + (f" ({choice.note})" if choice.note else ""))
    return ranking
