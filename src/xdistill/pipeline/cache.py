"""``xdistill cache``: the library function behind the verb."""

from __future__ import annotations

import time
from pathlib import Path

from xdistill.cache.config import CacheConfig
from xdistill.cache.extract import CacheSummary, TeacherCache, cache_task
from xdistill.config import ensure_valid
from xdistill.errors import XDistillError, join_problems
from xdistill.home import default_cache_dir
from xdistill.kinds import kind_of, load_task
from xdistill.runtime import Runtime
from xdistill.teachers.base import Teacher
from xdistill.teachers.zoo import Zoo, load_zoo


def open_cache(config: CacheConfig, progress: bool = True) -> TeacherCache:
    root = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    return TeacherCache(root, batch_size=config.batch_size, shard_size=config.shard_size,
                        augment_seed=config.augment_seed, progress=progress, loader_workers=config.loader_workers)


def load_inputs(config: CacheConfig) -> tuple[object, Zoo, list[Teacher]]:
    """Load and validate the task and the zoo (every problem before any teacher runs)."""
    problems = []
    if not config.task:
        problems.append("No task given. Pass --task DIR (a folder holding task.yaml).")
    if not config.zoo:
        problems.append("No zoo given. Pass --zoo FILE (a zoo YAML file).")
    if problems:
        raise XDistillError(join_problems(problems, "Invalid cache config"))
    task = load_task(config.task)
    zoo = load_zoo(config.zoo).select(config.teachers or None)
    return task, zoo, zoo.teachers(config.device)


def run_cache(config: CacheConfig, runtime: Runtime | None = None, progress: bool = True) -> CacheSummary:
    """Cache every teacher's outputs on every split of the task (sharded over ``runtime``'s processes)."""
    runtime = runtime or Runtime()
    ensure_valid(config, "cache config")
    task, _, teachers = load_inputs(config)
    kind = kind_of(task)
    if kind.cache is not None:  # a kind with outputs of its own shape (language models: top-k rows per token)
        started = time.perf_counter()
        entries = kind.cache(task, teachers, config, runtime.info)
        return CacheSummary(queries={name: info["n"] for name, info in entries["entries"].items()},
                            seconds=time.perf_counter() - started,
                            entries={name: {k: v for k, v in info.items() if k != "doc_tokens"}
                                     for name, info in entries["entries"].items()})
    cache = open_cache(config, progress)
    return cache_task(task, teachers, cache, views=config.views, runtime=runtime)
