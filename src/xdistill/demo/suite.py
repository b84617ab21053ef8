"""The demo world's bench suites: ``xdistill bench --suite demo`` (the targets a
teacher fits), ``--suite robust`` (targets where the zoo does not fit, see
:mod:`xdistill.demo.robust`) and ``--suite mismatch`` (an unlabeled pool 60 %
outside the label set and its clean twin, see :mod:`xdistill.demo.mismatch`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xdistill.bench.suite import BenchTarget
from xdistill.home import xdistill_home
from xdistill.train.config import DEFAULT_STUDENTS, StudentConfig

SUITES = ("demo", "robust", "mismatch")


def demo_suite(home: Path | None = None, progress: bool = True,
               log: Callable[[str], None] | None = print, suite: str = SUITES[0]) -> tuple[list[BenchTarget], Path]:
    """The suite's targets (the demo world built first if needed) and the cache folder the demo uses."""
    from xdistill.demo.run import ensure_generic_student
    from xdistill.demo.world import build_world

    quiet = log or (lambda _: None)
    world = build_world(home, progress=progress, log=quiet)
    init = ensure_generic_student(world, StudentConfig(DEFAULT_STUDENTS["image"]), progress=progress,
                                  log=quiet)
    if suite == "robust":
        from xdistill.demo.robust import build_robust

        targets = [BenchTarget(task, zoo, init, name) for name, (task, zoo) in build_robust(world, quiet).items()]
    elif suite == "mismatch":
        from xdistill.demo.mismatch import build_mismatch

        targets = [BenchTarget(task, zoo, init, name) for name, (task, zoo) in build_mismatch(world, quiet).items()]
    else:
        targets = [BenchTarget(path, world.zoo_path, init, name) for name, path in world.task_paths.items()]
    return targets, (Path(home) if home is not None else xdistill_home()) / "cache"
