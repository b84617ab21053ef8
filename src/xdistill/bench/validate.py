"""``xdistill rank --validate``: how well does each metric predict the accuracy
of a student distilled from each teacher?

Each teacher is distilled alone (the default teacher method over a ranking
that holds only it) into a short-budget student, with plain distillation (no
self-training term and no reliability scaling, so the teacher's own
contribution is what is measured); then, per metric, Kendall's tau and Spearman's rho
between score and distilled accuracy, and the top-1 regret: the accuracy lost
by taking the metric's top teacher instead of the best one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from xdistill.config import to_dict
from xdistill.data.task import Task
from xdistill.io import atomic_write_json
from xdistill.kinds.classification.prepare import PreparedTeachers
from xdistill.select.config import RankConfig
from xdistill.select.rank import Ranking, TeacherRanking
from xdistill.train.config import DistillConfig


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


def validate_selection(task: Task, prepared: PreparedTeachers, config: RankConfig,
                       log: Callable[[str], None] | None = print) -> dict:
    """Distill a short-budget student from each teacher alone (the default teacher method over a one-teacher
    ranking) and measure how well each metric's scores predict those students' test accuracies."""
    from xdistill.pipeline.distill import distill
    from xdistill.runtime import Runtime
    from xdistill.train.run import DistillInputs

    ranking = prepared.ranking
    accuracy: dict[str, float] = {}
    for row in ranking.teachers:
        solo = Ranking(task.name, ranking.metric, ranking.prepare, ranking.prepare_dim, ranking.weight_temperature, 1,
                       [TeacherRanking(row.name, row.domain, row.architecture, row.scores, 1, 1.0)])
        alone = PreparedTeachers(prepared.teachers, prepared.cache, solo, prepared.heads)
        cfg = DistillConfig(task=config.task, zoo=config.zoo, cache_dir=str(prepared.cache.root),
                            epochs=config.validate_epochs, seed=config.seed, progress=False, device=config.device,
                            self_training=False, reliability=False)
        result = distill(cfg, DistillInputs(task=task, prepared=alone), Runtime(log=None, write_report=False))
        accuracy[row.name] = result.metrics["test"]["accuracy"]
        if log is not None:
            log(f"validate: distilled from {row.name}: test accuracy {accuracy[row.name]:.4f}")
    metrics = sorted({m for row in ranking.teachers for m in row.scores})
    per_metric = {m: selection_quality({r.name: r.scores.get(m) for r in ranking.teachers}, accuracy) for m in metrics}
    return {"accuracy": accuracy, "metrics": per_metric, "epochs": config.validate_epochs}


def cached_validation(task: Task, prepared: PreparedTeachers, base: DistillConfig, folder: Path, epochs: int,
                      log: Callable[[str], None] | None) -> tuple[dict, dict]:
    """``rank --validate`` on one bench target, kept in ``folder/validation.json`` and reused while its
    config is unchanged; returns the validation and the ranking it validated."""
    rank_config = RankConfig(task=base.task, zoo=base.zoo, cache_dir=base.cache_dir, metric=base.metric,
                             prepare=base.prepare, prepare_dim=base.prepare_dim,
                             weight_temperature=base.weight_temperature, top_k=base.top_k, validate=True,
                             validate_epochs=epochs, seed=0, device=base.device)
    path = folder / "validation.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config") == to_dict(rank_config):
            return saved["result"], saved["ranking"]
    result = validate_selection(task, prepared, rank_config, log=log)
    ranking = prepared.ranking.to_json()
    atomic_write_json(path, {"config": to_dict(rank_config), "result": result, "ranking": ranking})
    return result, ranking
