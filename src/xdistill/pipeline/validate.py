"""``xdistill rank --validate``: how well does each metric predict the accuracy
of a student distilled from each teacher?

Each teacher is distilled alone (method ``nearest`` restricted to it) into a
short-budget student, with plain distillation (no self-training term and no
reliability scaling, so the teacher's own contribution is what is measured); then, per metric, Kendall's tau and Spearman's rho
between score and distilled accuracy, and the top-1 regret: the accuracy lost
by taking the metric's top teacher instead of the best one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from xdistill.cache.extract import TeacherCache
from xdistill.data.task import Task
from xdistill.select.rank import RankConfig, Ranking, TeacherRanking
from xdistill.teachers.base import Teacher


def selection_quality(scores: dict[str, float | None], accuracy: dict[str, float]) -> dict:
    """Kendall tau, Spearman rho and top-1 regret of one metric's scores against accuracies."""
    names = [n for n, s in scores.items() if s is not None and math.isfinite(s) and n in accuracy]
    if len(names) < 3:
        return {"kendall_tau": None, "spearman_rho": None, "top1_regret": None, "n": len(names)}
    s = np.array([scores[n] for n in names])
    a = np.array([accuracy[n] for n in names])
    if np.ptp(s) == 0 or np.ptp(a) == 0:  # every teacher scored (or distilled) alike: no correlation to speak of
        tau = rho = float("nan")
    else:
        tau, rho = kendalltau(s, a).statistic, spearmanr(s, a).statistic
    top = names[int(np.argmax(s))]
    return {"kendall_tau": None if np.isnan(tau) else float(tau), "spearman_rho": None if np.isnan(rho) else float(rho),
            "top1_regret": float(max(accuracy.values()) - accuracy[top]), "top1": top, "n": len(names)}


def validate_selection(task: Task, teachers: list[Teacher], cache: TeacherCache, ranking: Ranking,
                       config: RankConfig, log: Callable[[str], None] | None = print,
                       out_dir: Path | None = None) -> dict:
    from xdistill.pipeline.distill import distill
    from xdistill.train.config import DistillConfig

    accuracy: dict[str, float] = {}
    for row in ranking.teachers:
        solo = Ranking(task.name, ranking.metric, ranking.prepare, ranking.prepare_dim, ranking.weight_temperature, 1,
                       [TeacherRanking(row.name, row.domain, row.architecture, row.scores, 1, 1.0)])
        cfg = DistillConfig(task=config.task, zoo=config.zoo, cache_dir=str(cache.root), method="nearest",
                            epochs=config.validate_epochs, seed=config.seed, progress=False, device=config.device,
                            self_training=False, reliability=False)
        result = distill(cfg, task=task, teachers=teachers, ranking=solo, log=None, write_report=False)
        accuracy[row.name] = result.metrics["test"]["accuracy"]
        if log is not None:
            log(f"validate: distilled from {row.name}: test accuracy {accuracy[row.name]:.4f}")
    metrics = sorted({m for row in ranking.teachers for m in row.scores})
    per_metric = {m: selection_quality({r.name: r.scores.get(m) for r in ranking.teachers}, accuracy) for m in metrics}
    return {"accuracy": accuracy, "metrics": per_metric, "epochs": config.validate_epochs}
