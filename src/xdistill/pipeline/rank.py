"""``xdistill rank``: score, rank and weight the zoo's teachers for a task of any kind."""

from __future__ import annotations

from pathlib import Path

from xdistill.cache.extract import TeacherCache
from xdistill.config import ensure_valid
from xdistill.errors import XDistillError, join_problems
from xdistill.home import default_cache_dir
from xdistill.io import atomic_write_json
from xdistill.kinds import KINDS, kind_name, kind_of, load_task
from xdistill.runtime import Runtime
from xdistill.select.config import AUTO_METRIC, RankConfig
from xdistill.select.prepare import PREPARATIONS
from xdistill.teachers.zoo import load_zoo


def rank_problems(config: RankConfig) -> list[str]:
    problems = []
    if not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if not config.zoo:
        problems.append("No zoo given. Pass --zoo FILE.")
    metrics = KINDS.get(kind_name(config.task)).metrics if config.task else None
    for name in [config.metric, *config.metrics]:
        if metrics is not None and name not in metrics and name != AUTO_METRIC:
            problems.append(metrics.unknown_message(name))
    if config.prepare not in PREPARATIONS:
        problems.append(PREPARATIONS.unknown_message(config.prepare))
    return problems


def run_rank(config: RankConfig, runtime: Runtime | None = None):
    """Rank the teachers (and, with ``validate``, measure how well each metric predicts distillation).

    Returns (ranking, validation or None); writes the ranking JSON to ``config.out`` when set.
    """
    runtime = runtime or Runtime()
    ensure_valid(config, "rank config")
    problems = rank_problems(config)
    if problems:
        raise XDistillError(join_problems(problems, "Invalid rank config"))
    task = load_task(config.task)
    teachers = load_zoo(config.zoo).select(config.teachers or None).teachers(config.device)
    cache = TeacherCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir())
    prepared = kind_of(task).prepare(task, teachers, cache, config.selection, log=runtime.info)
    validation = None
    if config.validate and kind_of(task).validate is not None:
        validation = kind_of(task).validate(task, prepared, config, log=runtime.info)
    elif config.validate:
        from xdistill.bench.validate import validate_selection

        validation = validate_selection(task, prepared, config, log=runtime.info)
    if config.out:
        payload = prepared.ranking.to_json()
        if validation is not None:
            payload["validation"] = validation
        atomic_write_json(config.out, payload)
    return prepared.ranking, validation
