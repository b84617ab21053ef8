"""``xdistill demo``: build the digits demo world, then run the pipeline on
each of its target tasks: cache the teachers, rank them, distill a student
with the default method and train the baselines with the same student and
budget.

The demo is a client of the library like any user's script: it reads the
method registry (which methods are baselines) and the typed config (which
method is the default), and runs through the bench's per-run config and reuse.
Finished runs are kept under the output folder and reused when their config
is unchanged, so a second ``xdistill demo`` only prints the results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xdistill.bench.suite import BenchConfig, BenchTarget, finished_metrics, run_config
from xdistill.home import xdistill_home
from xdistill.kinds import load_task
from xdistill.kinds.classification.methods import METHODS
from xdistill.report.console import print_table
from xdistill.train.config import DEFAULT_STUDENTS, DistillConfig, StudentConfig

GENERIC_STUDENT_FILE = "generic-student-{name}.safetensors"
QUICK_EPOCHS = 8


def demo_methods() -> tuple[str, ...]:
    """The baselines, then the default method."""
    return (*[n for n, m in METHODS.items() if m.baseline], DistillConfig().method)


def ensure_generic_student(world, student: StudentConfig, progress: bool = True,
                           log: Callable[[str], None] | None = print) -> Path:
    """The generic pretrained student, trained once (3 epochs) on the world's pooled source domains."""
    from xdistill.data.task import Split
    from xdistill.runtime import Runtime
    from xdistill.train.config import PretrainConfig
    from xdistill.train.pretrain import pretrain_student

    path = world.root / GENERIC_STUDENT_FILE.format(name=student.name)
    if not path.is_file():
        with np.load(world.generic_data_path, allow_pickle=False) as data:
            pool = Split("generic", data["x"], data["y"])
        config = PretrainConfig(student=student, out=str(path), epochs=3, progress=progress)
        pretrain_student(config, pool, "image", Runtime(log=log))
    return path


def demo_config(target: BenchTarget, method: str, out: Path, quick: bool, cache_dir: str) -> DistillConfig:
    """One demo run: the bench's per-run config at the demo's budget."""
    bench = BenchConfig(epochs=QUICK_EPOCHS if quick else 0, cache_dir=cache_dir)
    return run_config(target, method, 0, out, bench)


def run_or_reuse(config: DistillConfig, task, log: Callable[[str], None] | None) -> dict:
    """Run a distillation unless ``config.out`` already holds a finished run of the same config."""
    import shutil

    from xdistill.pipeline import distill
    from xdistill.runtime import Runtime
    from xdistill.train.run import DistillInputs

    config = distill.resolved_config(config, task)
    metrics = finished_metrics(config)
    if metrics is not None:
        return metrics
    if Path(config.out).exists():
        shutil.rmtree(config.out)
    return distill.distill(config, DistillInputs(task=task), Runtime(log=log)).metrics


def run_demo(export: Path | None = None, home: Path | None = None, out: Path | None = None, quick: bool = False,
             log: Callable[[str], None] = print, methods: Sequence[str] | None = None) -> dict:
    """Every method on every demo target (one target with ``quick``), with a table per target and one across."""
    from xdistill.demo.world import build_world, export_world

    if export is not None:
        export_world(Path(export), home=home, log=log)
        return {}
    world = build_world(home, log=log)
    out = Path(out) if out is not None else xdistill_home() / "demo-runs"
    init = ensure_generic_student(world, StudentConfig(DEFAULT_STUDENTS["image"]), log=log)
    cache_dir = str((Path(home) if home else xdistill_home()) / "cache")
    results: dict[str, dict[str, dict]] = {}
    for task_name in list(world.task_paths)[:1] if quick else list(world.task_paths):
        log(f"== target task {task_name} ==")
        target = BenchTarget(world.task_paths[task_name], world.zoo_path, init, task_name)
        task = load_task(target.task_dir)
        results[task_name] = {m: run_or_reuse(demo_config(target, m, out / task_name / m, quick, cache_dir), task, log)
                              for m in (methods or demo_methods())}
        print_target(task_name, results[task_name])
    if len(results) > 1:
        print_summary(results)
    log(f"runs and reports are in {out}")
    return results


def print_target(task_name: str, runs: dict[str, dict]) -> None:
    rows = [[m, r["test"]["accuracy"], r["test"]["macro_f1"], r["test"]["ece"], r["cost"]["params"]]
            for m, r in runs.items()]
    headline = runs.get(DistillConfig().method) or {}
    for name, info in ((headline.get("teachers") or {}).get("teachers") or {}).items():
        rows.append([f"teacher {name} (weight {info['weight']:.2f}, bridged)", info.get("test_accuracy"), None, None, None])
    if "teacher_targets_test_accuracy" in headline:
        rows.append([f"{DistillConfig().method} teacher targets", headline["teacher_targets_test_accuracy"],
                     None, None, None])
    print_table(f"{task_name}: test accuracy (last epoch, seed 0)", ["method", "accuracy", "macro F1", "ECE", "params"],
                rows)


def summary_rows(results: dict[str, dict[str, dict]]) -> tuple[list[str], list[list]]:
    """Test accuracy per method and target with the average over targets, then, for every
    other method, how many points the default method is ahead of it on each target and on average."""
    head = DistillConfig().method
    targets = list(results)
    methods = [m for m in results[targets[0]] if all(m in results[t] for t in targets)]
    accuracy = {m: [results[t][m]["test"]["accuracy"] for t in targets] for m in methods}
    rows = [[m, *acc, float(np.mean(acc))] for m, acc in accuracy.items()]
    if head in accuracy:
        for other in (m for m in methods if m != head):
            gaps = [100 * (w - b) for w, b in zip(accuracy[head], accuracy[other])]
            rows.append([f"{head} - {other} (points)", *gaps, float(np.mean(gaps))])
    return ["method", *targets, "average"], rows


def print_summary(results: dict[str, dict[str, dict]]) -> None:
    header, rows = summary_rows(results)
    print_table("All targets: test accuracy (last epoch, seed 0), same student and budget for every method", header, rows)
