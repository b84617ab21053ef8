"""Selection choices measured without training a student: for each target,
each metric's top teacher and its regret, and the test accuracy of the mixed,
bridged teacher predictions for several weight temperatures and top-k (the
tables behind the defaults in docs/selection.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from xdistill.cache import TeacherCache
from xdistill.data import load_task
from xdistill.kinds.classification.prepare import prepare_teachers
from xdistill.kinds.classification.targets import most_confident
from xdistill.select.bridge import bridge_inputs
from xdistill.select.config import SelectionConfig
from xdistill.select.metrics import METRICS
from xdistill.select.weights import teacher_weights
from xdistill.teachers import load_zoo

TEMPERATURES = (0.25, 0.5, 1.0, 2.0)
TOP_KS = (1, 2, 3, 5, 0)


def sweep_target(task_dir: Path, zoo: Path, cache: TeacherCache, decoy: str | None = None) -> dict:
    """One target's metric table and mixed-target accuracies (gated mixing, as distillation uses)."""
    task = load_task(task_dir)
    prepared = prepare_teachers(task, load_zoo(zoo).teachers(), cache, SelectionConfig(metric="logme"))
    per_teacher = {}
    for t in prepared.teachers:
        test = cache.load(t, task.test)
        per_teacher[t.name] = prepared.head(task, t.name).predict_proba(bridge_inputs(test.features, test.logits)[0])
    acc = {n: float((p.argmax(1) == task.test.y).mean()) for n, p in per_teacher.items()}
    rows = {"teacher_test_accuracy": acc, "bridge_cv_accuracy": {n: h.cv_accuracy for n, h in prepared.heads.items()},
            "metrics": {}, "weights": {}}
    for metric in METRICS.names():
        scores = {r.name: r.scores[metric] for r in prepared.ranking.teachers}
        defined = {n: s for n, s in scores.items() if s is not None}
        order = sorted(defined, key=defined.get, reverse=True)
        rows["metrics"][metric] = {"top1": order[0], "top1_accuracy": acc[order[0]],
                                   "regret": max(acc.values()) - acc[order[0]],
                                   "decoy_rank": order.index(decoy) + 1 if decoy in order else None}
        for temperature in TEMPERATURES:
            for top_k in TOP_KS:
                w = teacher_weights(scores, temperature, top_k)
                names = [n for n in w if w[n] > 0]
                mixed = most_confident(np.stack([per_teacher[n] for n in names]), np.array([w[n] for n in names]))
                rows["weights"][f"{metric}|T={temperature}|k={top_k}"] = float((mixed.argmax(1) == task.test.y).mean())
    return rows


def mean_over_targets(results: Mapping[str, dict]) -> dict[str, float]:
    """metric|temperature|top_k -> mean mixed-target test accuracy over the targets, best first."""
    keys = next(iter(results.values()))["weights"].keys()
    means = {k: float(np.mean([r["weights"][k] for r in results.values()])) for k in keys}
    return dict(sorted(means.items(), key=lambda kv: -kv[1]))
