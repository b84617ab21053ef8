"""``xdistill bench``: every target x method x seed of a suite, then one results
file, one Markdown table and one HTML report.

    results = run_bench([BenchTarget(task_dir, zoo, init)], BenchConfig(seeds=2, methods=["fixmatch"]))

A suite is a list of :class:`BenchTarget` (a task folder, a zoo and, for
methods that start from one, a generic pretrained student); the demo world's
targets come from :func:`xdistill.demo.suite.demo_suite`. Each run writes its
own folder ``out/<target>/<method>/seed-<s>``; a run whose folder already
holds ``metrics.json`` beside an identical ``config.yaml`` is read back, never
rerun, so an interrupted bench resumes where it stopped. Per target, the
teachers are cached, ranked and bridged once (one preparation, bridge heads
fitted with a fixed seed) and every teacher method and seed reuses it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xdistill import __version__
from xdistill.config import to_dict
from xdistill.errors import XDistillError, join_problems
from xdistill.home import xdistill_home
from xdistill.io import atomic_write_json, atomic_write_text
from xdistill.kinds import kind_of, load_task
from xdistill.progress import progress_bar
from xdistill.runtime import Runtime
from xdistill.train.config import DistillConfig

RESULTS_NAME = "results.json"
MARKDOWN_NAME = "results.md"
QUICK_EPOCHS = 8  # the demo's quick budget
RUN_TEST_KEYS = ("accuracy", "macro_f1", "ece", "nll")
# Run settings a bench fixes per run; the others may be overridden for every run.
PER_RUN_KEYS = frozenset({"task", "zoo", "out", "method", "seed", "init", "epochs", "cache_dir"})
# Joins a method and its own settings into one bench row, a variant: weighted+loss=sinkd.
VARIANT_SEPARATOR = "+"


@dataclass(frozen=True)
class BenchTarget:
    """One target task of a suite."""

    task_dir: Path  # folder holding task.yaml
    zoo: Path  # zoo YAML file of the teachers
    init: Path | None = None  # generic pretrained student (.safetensors) for every method that starts from one
    name: str = ""  # name in the results and output folder; empty = the task's own name


@dataclass
class BenchConfig:
    """What a bench runs; the one home of its defaults."""

    seeds: int = 3  # seeds per target and method (0..seeds-1)
    methods: list[str] = field(default_factory=list)  # methods to run; empty = every method of the task's kind
    students: list[str] = field(default_factory=list)  # --matrix: student families, one column each (bench.matrix)
    epochs: int = 0  # epochs per run; 0 = the distill default (QUICK_EPOCHS with quick)
    quick: bool = False  # the short budget
    validate: bool = False  # also correlate each selection metric with distilled accuracy
    track: bool = False  # log new runs to TensorBoard / MLflow when installed
    out: str = ""  # output folder; empty = $XDISTILL_HOME/bench/<suite>
    cache_dir: str = ""  # teacher-output cache; empty = $XDISTILL_HOME/cache
    suite: str = "custom"  # the suite's name in the results
    overrides: dict[str, Any] = field(default_factory=dict)  # DistillConfig fields set on every run

    @property
    def run_epochs(self) -> int:
        return self.epochs or (QUICK_EPOCHS if self.quick else DistillConfig().epochs)

    def problems(self) -> list[str]:
        problems = []
        if not isinstance(self.seeds, int) or self.seeds < 1:
            problems.append(f"'seeds' must be an int >= 1 (the number of seeds, 0..seeds-1). Got {self.seeds!r}.")
        if self.epochs < 0:
            problems.append(f"'epochs' must be >= 1 (0 = the default). Got {self.epochs}.")
        for what, names in (("Methods", self.methods), ("Students", self.students)):
            duplicates = sorted({m for m in names if list(names).count(m) > 1})
            if duplicates:
                problems.append(f"{what} listed twice: {', '.join(duplicates)}.")
        known = {f.name for f in dataclasses.fields(DistillConfig)} - PER_RUN_KEYS
        problems += [f"Override '{k}' is not a DistillConfig field that a bench may set. Valid keys: "
                     f"{', '.join(sorted(known))}." for k in self.overrides if k not in known]
        return problems


@dataclass
class _Target:
    """What every run on one target shares: the task, and its teachers cached and ranked once."""

    target: BenchTarget
    name: str
    task: Any
    prepared: Any = None

    def prepare(self, config: DistillConfig) -> Any:
        if self.prepared is None:
            from xdistill.cache.extract import TeacherCache
            from xdistill.teachers.zoo import load_zoo

            teachers = load_zoo(str(self.target.zoo)).teachers(config.device)
            cache = TeacherCache(config.cache_dir, augment_seed=config.augment_seed, progress=config.progress)
            self.prepared = kind_of(self.task).prepare(self.task, teachers, cache, config.selection, views=config.views)
        return self.prepared


def target_problems(targets: Sequence[BenchTarget], methods: dict[str, Any]) -> list[str]:
    """Every problem with the suite's targets, found before anything runs."""
    problems = [] if targets else ["The suite holds no target."]
    for target in targets:
        if not (Path(target.task_dir) / "task.yaml").is_file():
            problems.append(f"Task folder '{target.task_dir}' holds no task.yaml.")
        if not Path(target.zoo).is_file():
            problems.append(f"Zoo file '{target.zoo}' does not exist.")
        for name, method in methods.items():
            if method.init == "required" and (target.init is None or not Path(target.init).is_file()):
                problems.append(f"Method '{name}' needs a generic pretrained student for target "
                                f"'{target.name or target.task_dir}': give BenchTarget(init=FILE.safetensors) "
                                f"(see xdistill pretrain) or leave '{name}' out.")
    return problems


def method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A bench row: a method, optionally with settings of its own joined by '+' (a variant):
    ``weighted+loss=sinkd+kd_temperature=2`` -> ``("weighted", {"loss": "sinkd", "kd_temperature": 2})``.
    Values are read as YAML scalars, as in ``key=value`` overrides."""
    from xdistill.config import parse_overrides

    base, *settings = spec.split(VARIANT_SEPARATOR)
    return base.strip(), parse_overrides([s.strip() for s in settings])


def spec_problems(spec: str) -> list[str]:
    """Every problem with a variant's settings (its method's name is checked against the registry apart)."""
    try:
        _, settings = method_spec(spec)
    except XDistillError as error:
        return [f"Method '{spec}': {error}"]
    known = {f.name for f in dataclasses.fields(DistillConfig)} - PER_RUN_KEYS
    return [f"Method '{spec}' sets '{k}', which is not a DistillConfig field that a bench row may set "
            f"(write METHOD+key=value+...). Valid keys: {', '.join(sorted(known))}."
            for k, v in settings.items() if k not in known or isinstance(v, dict)]


def run_config(target: BenchTarget, method: str, seed: int, out: Path, bench: BenchConfig) -> DistillConfig:
    """One run's distill config: every method that can start from a generic pretrained student starts from
    the target's (so baselines get the same initialisation as distillation), with the bench's budget; a
    variant's own settings (``method_spec``) go over the bench's overrides."""
    from xdistill.kinds import KINDS, kind_name

    base, settings = method_spec(method)
    declared = KINDS.get(kind_name(target.task_dir)).methods.get(base)
    init = str(target.init) if target.init is not None and declared.init != "none" else ""
    cache_dir = bench.cache_dir or str(xdistill_home() / "cache")
    return DistillConfig(task=str(target.task_dir), zoo=str(target.zoo), out=str(out), method=base, seed=seed,
                         init=init, epochs=bench.run_epochs, cache_dir=cache_dir, **{**bench.overrides, **settings})


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
        "pool_weights": metrics.get("pool_weights"),
        "seconds": metrics.get("seconds"),
    }


def run_or_reuse(config: DistillConfig, state: _Target, method: Any) -> tuple[dict, bool]:
    """The run's metrics, read back when ``config.out`` holds this very run; (metrics, trained now)."""
    from xdistill.pipeline.distill import distill, resolved_config
    from xdistill.train.run import DistillInputs

    config = resolved_config(config, state.task)
    metrics = finished_metrics(config)
    if metrics is not None:
        return metrics, False
    if Path(config.out).exists():
        shutil.rmtree(config.out)
    given = DistillInputs(task=state.task, prepared=state.prepare(config) if method.teachers else None)
    return distill(config, given, Runtime(log=None)).metrics, True


def _unchanged(out: Path, results: dict) -> bool:
    """True when ``out`` already holds these very results with their table and report."""
    path = out / RESULTS_NAME
    if not (path.is_file() and (out / MARKDOWN_NAME).is_file() and (out / "report.html").is_file()):
        return False
    try:
        return json.loads(path.read_text()) == json.loads(json.dumps(results))
    except json.JSONDecodeError:
        return False


def _load_targets(targets: Sequence[BenchTarget]) -> list[_Target]:
    states = []
    for target in targets:
        task = load_task(str(target.task_dir))
        states.append(_Target(target, target.name or task.name, task))
    names = [s.name for s in states]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise XDistillError(f"Targets share the name(s) {', '.join(clashes)}: give each BenchTarget its own name=.")
    return states


def chosen_methods(names: Sequence[str], registry: Any) -> tuple[dict[str, Any], list[str]]:
    """The named methods (or variants, see :func:`method_spec`) of a kind's registry, all of them when ``names``
    is empty, as name -> declaration, and every problem with the names."""
    names = list(names) or registry.names()
    problems = [p for n in names for p in spec_problems(n)]
    bases = {n: n.split(VARIANT_SEPARATOR)[0].strip() for n in names}
    return ({n: registry.get(b) for n, b in bases.items() if b in registry},
            [registry.unknown_message(b) for b in bases.values() if b not in registry] + problems)


def _check(targets: Sequence[BenchTarget], bench: BenchConfig) -> dict[str, Any]:
    """The methods to run (name -> declaration) once every problem is ruled out."""
    from xdistill.kinds import KINDS, kind_name

    problems = bench.problems()
    methods: dict[str, Any] = {}
    if targets:
        methods, unknown = chosen_methods(bench.methods, KINDS.get(kind_name(targets[0].task_dir)).methods)
        problems += unknown
    problems += target_problems(targets, methods)
    if problems:
        raise XDistillError(join_problems(problems, "Invalid bench"))
    return methods


def run_bench(targets: Sequence[BenchTarget], bench: BenchConfig | None = None,
              runtime: Runtime | None = None, progress: bool = True) -> dict:
    """Run (or read back) every target x method x seed and write results.json, results.md, report.html."""
    bench, runtime = bench or BenchConfig(), runtime or Runtime()
    methods = _check(targets, bench)
    out = Path(bench.out) if bench.out else xdistill_home() / "bench" / bench.suite
    states = _load_targets(targets)
    plan = [(state, name, seed) for state in states for name in methods for seed in range(bench.seeds)]
    runs, rankings, trained = [], {}, []
    with progress_bar(total=len(plan), desc="bench", unit="run", disable=not progress, dynamic_ncols=True) as bar:
        for state, name, seed in plan:
            bar.set_postfix_str(f"{state.name}/{name}/seed {seed}")
            folder = out / state.name / name / f"seed-{seed}"
            metrics, ran = run_or_reuse(run_config(state.target, name, seed, folder, bench), state, methods[name])
            if ran:
                trained.append(folder)
            if metrics.get("ranking") and state.name not in rankings:
                rankings[state.name] = metrics["ranking"]
            runs.append({**run_summary(state.name, metrics, folder, out), "method": name})
            bar.update(1)
    results = _results(bench, states, methods, runs, rankings)
    if bench.validate:
        _add_validation(results, states, bench, out, runtime)
    _write(out, results)
    if bench.track and trained:
        _track(trained, out, runtime)
    if runtime.info is not None:
        runtime.info(f"bench: {len(trained)} runs trained, {len(plan) - len(trained)} read back; results in "
                     f"{out / RESULTS_NAME}, report in {out / 'report.html'}")
    results["ran"], results["reused"] = len(trained), len(plan) - len(trained)
    return results


def _results(bench: BenchConfig, states: list[_Target], methods: dict[str, Any], runs: list, rankings: dict) -> dict:
    return {
        "xdistill": __version__, "suite": bench.suite, "targets": [s.name for s in states], "methods": list(methods),
        "baselines": [n for n, m in methods.items() if m.baseline],
        "method_descriptions": {n: m.describe() for n, m in methods.items()},
        "headline_method": DistillConfig().method if DistillConfig().method in methods else None,
        "seeds": list(range(bench.seeds)), "epochs": bench.run_epochs, "epoch_reported": "last",
        "bridge_heads": "fitted once per target (fixed seed) and shared by every teacher method and seed",
        "runs": runs, "rankings": rankings,
    }


def _add_validation(results: dict, states: list[_Target], bench: BenchConfig, out: Path, runtime: Runtime) -> None:
    from xdistill.bench.validate import cached_validation

    base = run_config(states[0].target, DistillConfig().method, 0, out, bench)
    results["validation"] = {}
    for state in states:
        found, ranking = cached_validation(state.task, state.prepare(base), base, out / state.name,
                                           min(bench.run_epochs, 8), runtime.info)
        results["validation"][state.name] = found
        results["rankings"].setdefault(state.name, ranking)


def _write(out: Path, results: dict) -> None:
    from xdistill.report.bench import markdown_tables, summarise, write_bench_report

    results["summary"] = summarise(results)
    if not _unchanged(out, results):
        atomic_write_json(out / RESULTS_NAME, results)
        atomic_write_text(out / MARKDOWN_NAME, markdown_tables(results, results["summary"]))
        write_bench_report(out, results, results["summary"])


def _track(folders: list[Path], out: Path, runtime: Runtime) -> None:
    from xdistill.report.tracking import log_run

    used: set[str] = set()
    for folder in folders:
        used.update(log_run(json.loads((folder / "metrics.json").read_text()), out))
    if runtime.info is not None:
        runtime.info(f"tracked {len(folders)} runs with {', '.join(sorted(used))}" if used else
                     "--track: neither tensorboard nor mlflow is installed; nothing tracked")
