"""``xdistill distill``: a run of any task kind, dispatched through the kind registry.

    result = distill(DistillConfig(task="tasks/t", zoo="zoo.yaml", out="runs/w"))
    result = distill(config, DistillInputs(task=task, teachers=teachers), Runtime(log=None))
"""

from __future__ import annotations

from pathlib import Path

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
    return task_kind(config, given).config_problems(config, given.task, has_teachers) + labeled_from_problems(config)


def labeled_from_problems(config: DistillConfig) -> list[str]:
    """'labeled_from' must name a condensed folder (made by xdistill condense)."""
    from xdistill.condense.store import ARRAYS, is_condensed

    folder = Path(config.labeled_from) if config.labeled_from else None
    if folder is None or (is_condensed(folder) and (folder / ARRAYS).is_file()):
        return []
    return [f"'labeled_from' must be a condensed folder holding condense.json and {ARRAYS}. Got '{folder}'. "
            "Make one with `xdistill condense --task T --ipc N --method M --out DIR`."]


def condensed_task(task, folder: str | Path):
    """``task`` with its labeled split replaced by the condensed set (images, hard labels and soft labels when it
    has them) and its unlabeled split by the same images: the condensed set is the only training data; the test
    split is unchanged."""
    from xdistill.condense.store import read_condensed
    from xdistill.data.task import replace_split

    if getattr(task, "kind", DEFAULT_KIND) != DEFAULT_KIND or getattr(task, "input", None) != "image":
        raise XDistillError(f"'labeled_from' replaces the images of an image classification task; '{task.name}' is "
                            "not one. Remove labeled_from=.")
    condensed = read_condensed(folder, list(task.classes), tuple(task.labeled.x.shape[1:]))
    task = replace_split(task, "labeled", condensed.x, condensed.y, condensed.soft)
    return replace_split(task, "unlabeled", condensed.x, None)


def distill(config: DistillConfig, given: DistillInputs | None = None, runtime: Runtime | None = None) -> DistillResult:
    """Train a student on ``config.task`` (or ``given.task``) with ``config.method``; write to ``config.out``."""
    given, runtime = given or DistillInputs(), runtime or Runtime()
    kind = task_kind(config, given)
    problems = config_problems(config, given)
    if problems:
        raise XDistillError(join_problems(problems, "Invalid distill config"))
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    task = given.task if given.task is not None else kind.load(config.task)
    if config.labeled_from:
        task = condensed_task(task, config.labeled_from)
    return kind.distill(kind.resolve(config, task), task, given, runtime)


def resolved_config(config: DistillConfig, task) -> DistillConfig:
    """The config a run on ``task`` saves: with the task kind's task-dependent defaults filled in."""
    return kind_of(task).resolve(config, task)
