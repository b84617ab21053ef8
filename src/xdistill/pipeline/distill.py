"""``xdistill distill``: a run of any task kind, dispatched through the kind registry.

    result = distill(DistillConfig(task="tasks/t", zoo="zoo.yaml", out="runs/w"))
    result = distill(config, DistillInputs(task=task, teachers=teachers), Runtime(log=None))
"""

from __future__ import annotations

import torch

from xdistill.errors import XDistillError, join_problems
from xdistill.kinds import DEFAULT_KIND, KINDS, TaskKind, kind_name, kind_of
from xdistill.runtime import Runtime
from xdistill.train.config import DistillConfig
from xdistill.train.run import DistillInputs, DistillResult


def task_kind(config: DistillConfig, given: DistillInputs) -> TaskKind:
    """The kind of the run's task: the given task's, or the one its task.yaml declares."""
    if given.task is not None:
        return kind_of(given.task)
    return KINDS.get(kind_name(config.task) if config.task else DEFAULT_KIND)


def config_problems(config: DistillConfig, given: DistillInputs | None = None) -> list[str]:
    """Every problem with a distill config for its task's kind, found before anything heavy runs."""
    given = given or DistillInputs()
    has_teachers = given.teachers is not None or given.prepared is not None
    return task_kind(config, given).config_problems(config, given.task, has_teachers)


def distill(config: DistillConfig, given: DistillInputs | None = None, runtime: Runtime | None = None) -> DistillResult:
    """Train a student on ``config.task`` (or ``given.task``) with ``config.method``; write to ``config.out``."""
    given, runtime = given or DistillInputs(), runtime or Runtime()
    kind = task_kind(config, given)
    problems = kind.config_problems(config, given.task, given.teachers is not None or given.prepared is not None)
    if problems:
        raise XDistillError(join_problems(problems, "Invalid distill config"))
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    task = given.task if given.task is not None else kind.load(config.task)
    return kind.distill(kind.resolve(config, task), task, given, runtime)


def resolved_config(config: DistillConfig, task) -> DistillConfig:
    """The config a run on ``task`` saves: with the task kind's task-dependent defaults filled in."""
    return kind_of(task).resolve(config, task)
