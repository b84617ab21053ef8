"""``xdistill pretrain``: a generic student, by the kind of the task(s) it pretrains on."""

from __future__ import annotations

from pathlib import Path

from xdistill.config import ensure_valid
from xdistill.errors import XDistillError, join_problems
from xdistill.kinds import DEFAULT_KIND, KINDS, kind_name
from xdistill.runtime import Runtime
from xdistill.train.config import PretrainConfig


def run_pretrain(config: PretrainConfig, runtime: Runtime | None = None) -> Path:
    runtime = runtime or Runtime()
    names = {kind_name(folder) for folder in [config.task, *config.tasks] if folder}
    if len(names) > 1:
        raise XDistillError(f"The --task folders are of different kinds ({', '.join(sorted(names))}). Pretrain on "
                            "tasks of one kind.")
    kind = KINDS.get(names.pop() if names else DEFAULT_KIND)
    if kind.pretrain is None:
        if config.tasks:
            raise XDistillError("Several --task folders are pretrained on together only for language models. "
                                "Give one --task (or --images).")
        from xdistill.train.pretrain import pretrain

        return pretrain(config, runtime)
    ensure_valid(config, "pretrain config")
    problems = kind.pretrain_problems(config) if kind.pretrain_problems is not None else []
    if problems:
        raise XDistillError(join_problems(problems, "Invalid pretrain config"))
    return kind.pretrain(config, runtime)
