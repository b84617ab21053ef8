"""``xdistill rank``: score, rank and weight the zoo's teachers for a task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xdistill.cache.extract import TeacherCache, cache_task
from xdistill.data.task import load_task
from xdistill.errors import XDistillError, join_problems
from xdistill.home import default_cache_dir
from xdistill.io import atomic_write_json
from xdistill.select.metrics import METRICS
from xdistill.select.prepare import PREPARATIONS
from xdistill.select.rank import RankConfig, Ranking, rank_teachers
from xdistill.teachers.zoo import load_zoo


def rank_problems(config: RankConfig) -> list[str]:
    problems = []
    if not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if not config.zoo:
        problems.append("No zoo given. Pass --zoo FILE.")
    for name in [config.metric, *config.metrics]:
        if name not in METRICS:
            problems.append(METRICS.unknown_message(name))
    if config.prepare not in PREPARATIONS:
        problems.append(PREPARATIONS.unknown_message(config.prepare))
    if config.weight_temperature <= 0:
        problems.append(f"'weight_temperature' must be > 0. Got {config.weight_temperature}.")
    if config.top_k < 0:
        problems.append(f"'top_k' must be >= 0 (0 keeps every teacher). Got {config.top_k}.")
    return problems


def run_rank(config: RankConfig, log: Callable[[str], None] | None = print) -> tuple[Ranking, dict | None]:
    """Rank the teachers (and, with ``validate``, measure how well each metric predicts distillation)."""
    problems = rank_problems(config)
    if problems:
        raise XDistillError(join_problems(problems, "Invalid rank config"))
    task = load_task(config.task)
    zoo = load_zoo(config.zoo).select(config.teachers or None)
    teachers = zoo.teachers()
    cache = TeacherCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir())
    cache_task(task, teachers, cache, log=log)
    ranking = rank_teachers(task, teachers, cache, metric=config.metric, metrics=config.metrics or None,
                            prepare=config.prepare, prepare_dim=config.prepare_dim,
                            weight_temperature=config.weight_temperature, top_k=config.top_k,
                            specs={s.name: s for s in zoo.specs}, log=log)
    validation = None
    if config.validate:
        from xdistill.pipeline.validate import validate_selection

        validation = validate_selection(task, teachers, cache, ranking, config, log=log)
    if config.out:
        payload = ranking.to_json()
        if validation is not None:
            payload["validation"] = validation
        atomic_write_json(config.out, payload)
    return ranking, validation
