"""The condensation benchmark: method x images per class x hard/soft labels on one image task, every
condensed set scored with the fixed evaluation recipe beside random real images and the full data; and
the reuse check: a distillation method trained on a condensed set (``labeled_from=``) against the same
method on the full target, accuracy and wall time.

Every finished piece is kept in the output folder (``ipc<N>/<method>/`` condensed folders with their
``eval.json``, ``baselines/*.json``, ``reuse/``), so an interrupted bench resumes where it stopped.
Writes ``results.json``, ``results.md`` and ``report.html`` (the tables and every condensed set's picture).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xdistill.condense import CONDENSE_METHODS, CondenseConfig, methods_of
from xdistill.condense.evaluate import EvalConfig, condensed_results, full_data_results, random_real_results
from xdistill.condense.store import RECORD, read_condensed
from xdistill.config import from_dict, to_dict
from xdistill.data.tensors import images_to_tensor
from xdistill.errors import ConfigError, join_problems
from xdistill.io import atomic_write_json, atomic_write_text
from xdistill.kinds import load_task
from xdistill.pipeline.condense import condense
from xdistill.pipeline.distill import distill
from xdistill.report.condense import condense_markdown, write_condense_report
from xdistill.runtime import Runtime
from xdistill.train.config import DistillConfig

DEFAULT_METHODS = ["random", "dm", "datadam", "herding", "kcenter"]


@dataclass
class CondenseBenchConfig:
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))  # image methods to compare
    ipcs: list[int] = field(default_factory=lambda: [1, 10])  # images per class
    labels: str = "relabel"  # the label method every condensed set also gets soft labels from
    seeds: int = 3  # students per set and label kind
    condense: dict[str, Any] = field(default_factory=dict)  # CondenseConfig overrides for every method
    recipe: dict[str, Any] = field(default_factory=dict)  # EvalConfig overrides
    out: str = ""

    def problems(self) -> list[str]:
        problems = [CONDENSE_METHODS.unknown_message(m) for m in self.methods if m not in CONDENSE_METHODS]
        problems += [f"'{m}' is a label method; the bench compares image methods ({', '.join(methods_of('images'))})."
                     for m in self.methods if m in CONDENSE_METHODS and CONDENSE_METHODS.get(m).role != "images"]
        if self.labels not in methods_of("labels"):
            problems.append(f"'labels' must be a label method ({', '.join(methods_of('labels'))}). Got {self.labels!r}.")
        problems += [f"'ipcs' must hold ints in 1..1000. Got {i!r}." for i in self.ipcs if not 1 <= i <= 1000]
        if not self.out:
            problems.append("No output folder given.")
        return problems


def _cached(path: Path, compute: Callable[[], dict]) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    atomic_write_json(path, result)
    return result


def run_condense_bench(task_dir: str | Path, zoo: str | Path, bench: CondenseBenchConfig,
                       log: Callable[[str], None] | None = None, reuse: Callable[[Path], dict] | None = None) -> dict:
    """Every method x ipc on the task (resumable), with the baselines; ``reuse(out)`` adds the reuse check."""
    problems = bench.problems()
    if problems:
        raise ConfigError(join_problems(problems, "Invalid condense bench"))
    out = Path(bench.out)
    recipe = from_dict(EvalConfig, {"seeds": bench.seeds, "progress": False, **bench.recipe}, "evaluation recipe")
    task = load_task(task_dir)
    say = log or (lambda _m: None)
    full = _cached(out / "baselines" / "full.json", lambda: full_data_results(task, recipe))
    say(f"full data: {full['accuracy_mean']:.4f}")
    rows = []
    for ipc in bench.ipcs:
        random_real = _cached(out / "baselines" / f"random-ipc{ipc}.json", lambda: random_real_results(task, ipc, recipe))
        say(f"ipc {ipc}: random real images {random_real['accuracy_mean']:.4f}")
        baselines = {"random_real_hard": random_real, "full_data": full}
        for method in bench.methods:
            folder = out / f"ipc{ipc}" / method
            if not (folder / RECORD).is_file():
                settings = {**bench.condense, "task": str(task_dir), "zoo": str(zoo), "out": str(folder),
                            "method": method, "labels": bench.labels, "ipc": ipc, "progress": False}
                condense(from_dict(CondenseConfig, settings, "condense settings"), log=say)
            rows.append(_row(method, ipc, folder, task, recipe, baselines, say))
    results = {"task": task.name, "task_dir": str(task_dir), "zoo": str(zoo), "bench": to_dict(bench),
               "recipe": to_dict(recipe), "full_data": full, "rows": rows}
    write_results(out, results)
    if reuse is not None:
        results["reuse"] = reuse(out / "reuse")
        write_results(out, results)
    return results


def _row(method: str, ipc: int, folder: Path, task, recipe: EvalConfig, baselines: dict,
         say: Callable[[str], None]) -> dict:
    """One method at one ipc: its condensed set scored with hard and with soft labels (kept in eval.json)."""
    condensed = read_condensed(folder, list(task.classes))

    def score() -> dict:
        return condensed_results(images_to_tensor(condensed.x), condensed.y, condensed.soft, task, recipe, baselines)

    scores = _cached(folder / "eval.json", score)
    row = {"method": method, "ipc": ipc, "hard": scores["condensed_hard"], "soft": scores.get("condensed_soft"),
           "share_of_gap": scores.get("share_of_gap", {}), "random_real_hard": baselines["random_real_hard"],
           "condense_seconds": condensed.record["seconds"], "iterations": condensed.record.get("iterations", 0),
           "folder": str(folder)}
    soft = "" if row["soft"] is None else f", soft {row['soft']['accuracy_mean']:.4f}"
    say(f"ipc {ipc} {method}: hard {row['hard']['accuracy_mean']:.4f}{soft} ({row['condense_seconds']:.0f}s to condense)")
    return row


def write_results(out: Path, results: dict) -> None:
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", condense_markdown(results))
    write_condense_report(out, results)


def reuse_check(task_dir: str | Path, zoo: str | Path, methods: list[str], condense_settings: dict, epochs: int,
                seeds: int, condensed_settings: dict | None = None, shared_settings: dict | None = None,
                log: Callable[[str], None] | None = None) -> Callable[[Path], dict]:
    """``reuse(out)``: each distillation method on the full target and with ``labeled_from=`` a condensed set made
    once with ``condense_settings`` (same epochs and seeds; ``condensed_settings``, DistillConfig overrides, for the
    condensed runs only; ``shared_settings``, overrides for every run), accuracy and wall time of each distill call
    (kept under ``out``). Each condensed run is
    compared with the same method on the full target and with the first method's full-target run (the reference)."""
    condensed_settings = dict(condensed_settings or {})
    shared_settings = dict(shared_settings or {})

    def run(out: Path) -> dict:
        folder = out / "condensed"
        if not (folder / RECORD).is_file():
            settings = {**condense_settings, "task": str(task_dir), "zoo": str(zoo), "out": str(folder),
                        "progress": False}
            condense(from_dict(CondenseConfig, settings, "condense settings"), log=log)
        condensed = json.loads((folder / RECORD).read_text())
        load_lazy_torch_modules()
        runs = {}
        for method in methods:
            for name, extra in (("full target", {}),
                                ("condensed set", {**condensed_settings, "labeled_from": str(folder)})):
                accuracies, seconds, cpu_seconds = [], [], []
                for seed in range(seeds):
                    run_out = out / method / ("full" if not extra else "from-condensed") / f"seed{seed}"
                    settings = {"task": str(task_dir), "zoo": str(zoo), "method": method, "epochs": epochs,
                                "seed": seed, "out": str(run_out), "progress": False, **shared_settings, **extra}
                    config = from_dict(DistillConfig, settings, "reuse distill settings")

                    def train(config=config) -> dict:
                        started, cpu = time.perf_counter(), time.process_time()
                        metrics = distill(config, runtime=Runtime(log=None, write_report=False)).metrics
                        return {"accuracy": metrics["test"]["accuracy"], "seconds": time.perf_counter() - started,
                                "cpu_seconds": time.process_time() - cpu}

                    done = _cached(run_out.parent / f"seed{seed}.json", train)
                    accuracies.append(done["accuracy"])
                    seconds.append(done["seconds"])
                    cpu_seconds.append(done.get("cpu_seconds", float("nan")))
                runs[f"{name}, {method}"] = {
                    "method": method, "accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
                    "accuracy": accuracies, "seconds": float(np.mean(seconds)), "cpu_seconds": float(np.mean(cpu_seconds)),
                    **({"condense_seconds": condensed["seconds"]} if extra else {})}
        reference = runs[f"full target, {methods[0]}"]
        comparison, against_reference = {}, {}
        for method in methods:
            full, small = runs[f"full target, {method}"], runs[f"condensed set, {method}"]
            comparison[method] = gap_and_ratio(full, small)
            against_reference[method] = gap_and_ratio(reference, small)
            if log is not None:
                log(f"reuse {method}: full {full['accuracy_mean']:.4f} in {full['seconds']:.0f}s, condensed "
                    f"{small['accuracy_mean']:.4f} in {small['seconds']:.0f}s")
        return {"task": load_task(task_dir).name, "condense": condense_settings, "condensed_settings": condensed_settings,
                "shared_settings": shared_settings,
                "pool": condensed.get("pool"), "epochs": epochs, "seeds": seeds, "reference": methods[0],
                "runs": runs, "comparison": comparison, "against_reference": against_reference}

    return run


def load_lazy_torch_modules() -> None:
    """Load what torch imports on first use of a setting every distill call makes (deterministic algorithms pulls
    in its compiler modules: several CPU seconds), so that no timed run carries it for the runs after it."""
    import torch

    torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled(),
                                       warn_only=torch.is_deterministic_algorithms_warn_only_enabled())


def gap_and_ratio(full: dict, condensed: dict) -> dict:
    """The condensed run's accuracy gap to a full-target run (points, full − condensed), its wall-time ratio and its
    CPU-time ratio (the process's CPU time: one torch thread, so it does not swing with other jobs' load)."""
    return {"accuracy_gap_points": 100 * (full["accuracy_mean"] - condensed["accuracy_mean"]),
            "time_ratio": condensed["seconds"] / full["seconds"],
            "cpu_time_ratio": condensed["cpu_seconds"] / full["cpu_seconds"]}


SCALE_SCRIPT = """
import json, resource, sys, time
from xdistill.cli.main import main
started = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as exit:
    if exit.code:
        raise
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def scale_check(out: Path, pool_sizes: list[int], ipcs: list[int], image_shape: tuple[int, ...] = (32, 32, 3),
                method: str = "dm", settings: dict | None = None, log: Callable[[str], None] | None = None) -> list[dict]:
    """Condense synthetic tasks of ``image_shape`` whose labeled pool is stored as a memory-mapped ``x.npy`` folder,
    each run in a fresh process, and report its wall time and peak resident memory per pool size and ipc: memory
    stays flat when matching reads mini-batches of the pool only."""
    import os
    import subprocess
    import sys

    from xdistill.data import save_task, task_from_arrays

    rows = []
    for size in pool_sizes:
        task_dir = out / f"task-{size}"
        if not (task_dir / "task.yaml").is_file():
            rng = np.random.default_rng(size)
            labels = np.arange(size) % 10
            images = rng.integers(0, 256, size=(size, *image_shape), dtype=np.uint8)
            test = (images[:100], labels[:100])
            save_task(task_from_arrays(f"synthetic-{size}", [str(c) for c in range(10)], (images, labels), images[:100],
                                       test, "image"), task_dir, layout="npy")
        for ipc in ipcs:
            record = out / f"run-{size}-ipc{ipc}.json"
            if not record.is_file():
                overrides = [f"{k}={v}" for k, v in (settings or {}).items()]
                command = [sys.executable, "-c", SCALE_SCRIPT, "condense", "--task", str(task_dir), "--ipc", str(ipc),
                           "--method", method, "--out", str(out / f"condensed-{size}-ipc{ipc}"), "progress=false",
                           *overrides]
                done = subprocess.run(command, capture_output=True, text=True, check=True, env=dict(os.environ))
                atomic_write_json(record, {"pool": size, "ipc": ipc, "shape": list(image_shape), "method": method,
                                           **json.loads(done.stdout.strip().splitlines()[-1])})
            rows.append(json.loads(record.read_text()))
            if log is not None:
                r = rows[-1]
                log(f"pool {size}, ipc {ipc}: {r['seconds']:.0f}s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    return rows
