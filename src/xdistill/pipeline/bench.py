"""``xdistill bench``: every target x method x seed of a suite, then one results
file, one Markdown table and one HTML report.

    results = run_bench("demo", seeds=3, out=Path("bench"))
    results = run_bench([BenchTarget(task_dir, zoo, init)], seeds=2, methods=("supervised", "weighted"))

A suite is a list of :class:`BenchTarget` (a task folder, a zoo and, for
``finetune``, a generic pretrained student); ``"demo"`` names the digits demo
world's targets. Each run writes its own folder ``out/<target>/<method>/seed-<s>``;
a run whose folder already holds ``metrics.json`` beside an identical
``config.yaml`` is read back, never rerun, so an interrupted bench resumes
where it stopped. Per target, the teachers are cached once and ranked and
bridged once (bridge heads fitted with seed 0); every teacher method and seed
reuses that ranking and those heads.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from xdistill.progress import progress_bar

from xdistill import __version__
from xdistill.config import to_dict
from xdistill.errors import XDistillError, join_problems
from xdistill.home import xdistill_home
from xdistill.io import atomic_write_json, atomic_write_text
from xdistill.train.config import DistillConfig

BENCH_METHODS = ("supervised", "fixmatch", "finetune", "nearest", "weighted", "ensemble", "partition")
SUITES = ("demo",)
RESULTS_NAME = "results.json"
MARKDOWN_NAME = "results.md"
QUICK_EPOCHS = 8  # the demo's quick budget
FULL_EPOCHS = 30  # the demo's full budget
RUN_TEST_KEYS = ("accuracy", "macro_f1", "ece", "nll")


@dataclass(frozen=True)
class BenchTarget:
    """One target task of a suite."""

    task_dir: Path  # folder holding task.yaml
    zoo: Path  # zoo YAML file of the teachers
    init: Path | None = None  # generic pretrained student (.safetensors): every method but supervised starts from it
    name: str = ""  # name in the results and output folder; empty = the task's own name


@dataclass
class _TargetState:
    """What every run on one target shares: the task, the teachers, their ranking and bridge heads."""

    target: BenchTarget
    name: str
    task: Any
    cache_dir: str
    teachers: list | None = None
    ranking: Any = None
    heads: dict = field(default_factory=dict)

    def prepare_teachers(self, config: DistillConfig, log: Callable[[str], None] | None) -> None:
        if self.teachers is not None:
            return
        from xdistill.cache.extract import TeacherCache, cache_task
        from xdistill.select.rank import rank_teachers
        from xdistill.teachers.base import create_teacher
        from xdistill.teachers.zoo import load_zoo
        from xdistill.train.targets import build_targets

        zoo = load_zoo(str(self.target.zoo))
        teachers = [create_teacher(spec) for spec in zoo.specs]
        cache = TeacherCache(self.cache_dir, augment_seed=config.augment_seed, progress=config.progress)
        cache_task(self.task, teachers, cache, views=config.views, log=log)
        self.ranking = rank_teachers(self.task, teachers, cache, metric=config.metric, prepare=config.prepare,
                                     prepare_dim=config.prepare_dim, weight_temperature=config.weight_temperature,
                                     top_k=config.top_k, specs={s.name: s for s in zoo.specs}, log=log)
        # 'ensemble' bridges every teacher, so its heads serve every teacher method.
        self.heads = build_targets(self.task, teachers, cache, self.ranking, "ensemble", views=config.views,
                                   seed=0).heads
        self.teachers = teachers


def demo_suite(home: Path | None = None, progress: bool = True,
               log: Callable[[str], None] | None = print) -> tuple[list[BenchTarget], Path]:
    """The demo world's targets (built first if needed) and the cache folder the demo uses."""
    from xdistill.demo.run import ensure_generic_student
    from xdistill.demo.world import build_world
    from xdistill.train.config import StudentConfig

    quiet = log or (lambda _: None)
    world = build_world(home, progress=progress, log=quiet)
    init = ensure_generic_student(world, StudentConfig(), progress=progress, log=quiet)
    targets = [BenchTarget(path, world.zoo_path, init, name) for name, path in world.task_paths.items()]
    return targets, (Path(home) if home is not None else xdistill_home()) / "cache"


def bench_problems(suite: str | Sequence[BenchTarget], seeds: int, methods: Sequence[str],
                   epochs: int | None) -> list[str]:
    """Every problem with the bench's arguments, found before anything runs."""
    from xdistill.train.methods import METHODS

    problems = []
    if isinstance(suite, str) and suite not in SUITES:
        problems.append(f"Unknown suite '{suite}'. Available: {', '.join(SUITES)}.")
    if not isinstance(seeds, int) or seeds < 1:
        problems.append(f"'seeds' must be an int >= 1 (the number of seeds, 0..seeds-1). Got {seeds!r}.")
    if epochs is not None and epochs < 1:
        problems.append(f"'epochs' must be >= 1. Got {epochs}.")
    if not methods:
        problems.append(f"No methods given. Choose from: {', '.join(METHODS.names())}.")
    problems += [METHODS.unknown_message(m) for m in methods if m not in METHODS]
    duplicates = sorted({m for m in methods if list(methods).count(m) > 1})
    if duplicates:
        problems.append(f"Methods listed twice: {', '.join(duplicates)}.")
    if not isinstance(suite, str):
        if not suite:
            problems.append("The suite holds no target.")
        for target in suite:
            if not (Path(target.task_dir) / "task.yaml").is_file():
                problems.append(f"Task folder '{target.task_dir}' holds no task.yaml.")
            if not Path(target.zoo).is_file():
                problems.append(f"Zoo file '{target.zoo}' does not exist.")
            if "finetune" in methods and (target.init is None or not Path(target.init).is_file()):
                problems.append(f"Method 'finetune' needs a generic pretrained student for target "
                                f"'{target.name or target.task_dir}': give BenchTarget(init=FILE.safetensors) "
                                f"or leave 'finetune' out.")
    return problems


def run_config(target: BenchTarget, method: str, seed: int, out: Path, epochs: int, cache_dir: str,
               overrides: dict[str, Any] | None = None) -> DistillConfig:
    """The distill config of one bench run: the demo's (every method but 'supervised' starts from
    the target's generic student, when it has one), with ``epochs`` and ``overrides`` on top."""
    from xdistill.demo.run import demo_config

    config = demo_config(Path(target.task_dir), Path(target.zoo), out, method, target.init or Path(), False, seed,
                         cache_dir)
    if target.init is None:
        config = dataclasses.replace(config, init="")
    return dataclasses.replace(config, epochs=epochs, **(overrides or {}))


def finished_metrics(config: DistillConfig) -> dict | None:
    """The metrics of the finished run in ``config.out`` if it ran this very config, else None."""
    out = Path(config.out)
    wanted = yaml.safe_dump(to_dict(config), sort_keys=False)
    metrics, saved = out / "metrics.json", out / "config.yaml"
    if metrics.is_file() and saved.is_file() and saved.read_text() == wanted:
        return json.loads(metrics.read_text())
    return None


def run_summary(target: str, metrics: dict, out: Path, root: Path) -> dict:
    """What results.json keeps of one run."""
    teachers = ((metrics.get("teachers") or {}).get("teachers")) or None
    curves = [{"epoch": r["epoch"], "train": r.get("train", {}), "seconds": r.get("seconds"),
               "test": {k: (r.get("test") or {}).get(k) for k in RUN_TEST_KEYS}} for r in metrics.get("curves") or []]
    return {
        "task": target, "method": metrics["method"], "seed": metrics["seed"], "out": str(out.relative_to(root)),
        "epoch_reported": metrics.get("epoch_reported", "last"),
        "test": {k: metrics["test"][k] for k in RUN_TEST_KEYS},
        "cost": dict(metrics["cost"]),
        "curves": curves,
        "teachers": None if teachers is None else {
            n: {"weight": t.get("weight"), "test_accuracy": t.get("test_accuracy")} for n, t in teachers.items()},
        "teacher_targets_test_accuracy": metrics.get("teacher_targets_test_accuracy"),
        "seconds": metrics.get("seconds"),
    }


def _validation(state: _TargetState, folder: Path, epochs: int, config: DistillConfig,
                log: Callable[[str], None] | None) -> tuple[dict, dict]:
    """``rank --validate`` on one target, kept in ``folder/validation.json`` and reused when unchanged;
    returns the validation and the ranking it validated."""
    from xdistill.cache.extract import TeacherCache
    from xdistill.pipeline.validate import validate_selection
    from xdistill.select.rank import RankConfig

    rank_config = RankConfig(task=str(state.target.task_dir), zoo=str(state.target.zoo), cache_dir=state.cache_dir,
                             metric=config.metric, prepare=config.prepare, prepare_dim=config.prepare_dim,
                             weight_temperature=config.weight_temperature, top_k=config.top_k, validate=True,
                             validate_epochs=epochs, seed=0, device=config.device)
    path = folder / "validation.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config") == to_dict(rank_config):
            return saved["result"], saved["ranking"]
    state.prepare_teachers(config, log)
    cache = TeacherCache(state.cache_dir, augment_seed=config.augment_seed, progress=False)
    result = validate_selection(state.task, state.teachers, cache, state.ranking, rank_config, log=log)
    ranking = state.ranking.to_json()
    atomic_write_json(path, {"config": to_dict(rank_config), "result": result, "ranking": ranking})
    return result, ranking


def _unchanged(out: Path, results: dict) -> bool:
    """True when ``out`` already holds these very results with their table and report."""
    path = out / RESULTS_NAME
    if not (path.is_file() and (out / MARKDOWN_NAME).is_file() and (out / "report.html").is_file()):
        return False
    try:
        return json.loads(path.read_text()) == json.loads(json.dumps(results))
    except json.JSONDecodeError:
        return False


def run_bench(suite: str | Sequence[BenchTarget] = "demo", seeds: int = 3, methods: Sequence[str] = BENCH_METHODS,
              out: Path | None = None, epochs: int | None = None, quick: bool = False, validate: bool = False,
              log: Callable[[str], None] | None = print, track: bool = False, cache_dir: Path | None = None,
              overrides: dict[str, Any] | None = None, progress: bool = True, home: Path | None = None) -> dict:
    """Run (or read back) every target x method x seed and write results.json, results.md, report.html.

    suite: "demo" or a list of :class:`BenchTarget`. epochs: per run; default 8 with ``quick``, else 30.
    overrides: DistillConfig fields set on every run (e.g. ``{"batch_size": 16}``). Returns the results.
    """
    from xdistill.data.task import load_task
    from xdistill.pipeline.distill import distill
    from xdistill.report.bench import markdown_tables, summarise, write_bench_report
    from xdistill.train.methods import METHODS

    methods = list(methods)
    problems = bench_problems(suite, seeds, methods, epochs)
    if overrides:
        known = {f.name for f in dataclasses.fields(DistillConfig)}
        fixed = {"task", "zoo", "out", "method", "seed", "init", "epochs", "cache_dir"}
        problems += [f"Override '{k}' is not a DistillConfig field that a bench may set. Valid keys: "
                     f"{', '.join(sorted(known - fixed))}." for k in overrides if k not in known - fixed]
    if problems:
        raise XDistillError(join_problems(problems, "Invalid bench"))
    epochs = epochs or (QUICK_EPOCHS if quick else FULL_EPOCHS)
    suite_name = suite if isinstance(suite, str) else "custom"
    if isinstance(suite, str):
        targets, default_cache = demo_suite(home, progress, log)
    else:
        targets, default_cache = list(suite), (Path(home) if home is not None else xdistill_home()) / "cache"
    cache = str(cache_dir or default_cache)
    out = Path(out) if out is not None else xdistill_home() / "bench" / suite_name
    states = []
    for target in targets:
        task = load_task(str(target.task_dir))
        states.append(_TargetState(target, target.name or task.name, task, cache))
    names = [s.name for s in states]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise XDistillError(f"Targets share the name(s) {', '.join(clashes)}: give each BenchTarget its own name=.")

    plan = [(state, method, seed) for state in states for method in methods for seed in range(seeds)]
    runs, rankings, ran, reused, executed = [], {}, 0, 0, []
    with progress_bar(total=len(plan), desc="bench", unit="run", disable=not progress, dynamic_ncols=True) as bar:
        for state, method, seed in plan:
            bar.set_postfix_str(f"{state.name}/{method}/seed {seed}")
            folder = out / state.name / method / f"seed-{seed}"
            config = run_config(state.target, method, seed, folder, epochs, cache, overrides)
            metrics = finished_metrics(config)
            if metrics is None:
                if folder.exists():
                    shutil.rmtree(folder)
                kwargs: dict[str, Any] = {"task": state.task, "log": None}
                if METHODS.get(method).uses_teachers:
                    state.prepare_teachers(config, None)
                    kwargs.update(teachers=state.teachers, ranking=state.ranking, heads=state.heads)
                metrics = distill(config, **kwargs).metrics
                ran += 1
                executed.append(folder)
            else:
                reused += 1
            if metrics.get("ranking") and state.name not in rankings:
                rankings[state.name] = metrics["ranking"]
            runs.append(run_summary(state.name, metrics, folder, out))
            bar.update(1)

    results: dict[str, Any] = {
        "xdistill": __version__, "suite": suite_name, "targets": names, "methods": methods,
        "seeds": list(range(seeds)), "epochs": epochs, "epoch_reported": "last",
        "bridge_heads": "fitted once per target (seed 0) and shared by every teacher method and seed",
        "runs": runs, "rankings": rankings,
    }
    if validate:
        validate_epochs = min(epochs, 8)
        base = run_config(states[0].target, "nearest", 0, out, epochs, cache, overrides)
        results["validation"] = {}
        for state in states:
            found, ranking = _validation(state, out / state.name, validate_epochs, base, log)
            results["validation"][state.name] = found
            rankings.setdefault(state.name, ranking)
    results["summary"] = summarise(results)
    if not _unchanged(out, results):
        atomic_write_json(out / RESULTS_NAME, results)
        atomic_write_text(out / MARKDOWN_NAME, markdown_tables(results, results["summary"]))
        write_bench_report(out, results, results["summary"])
    if track and executed:
        from xdistill.report.tracking import log_run

        used: set[str] = set()
        for folder in executed:
            used.update(log_run(json.loads((folder / "metrics.json").read_text()), out))
        if log is not None:
            log(f"tracked {len(executed)} runs with {', '.join(sorted(used))}" if used else
                "--track: neither tensorboard nor mlflow is installed; nothing tracked")
    if log is not None:
        log(f"bench: {ran} runs trained, {reused} read back; results in {out / RESULTS_NAME}, "
            f"report in {out / 'report.html'}")
    results["ran"], results["reused"] = ran, reused
    return results
