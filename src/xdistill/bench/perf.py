"""``xdistill bench --perf``: what the teacher cache costs and saves, measured
on this machine.

Each comparison times its two sides in the same process, alternating them
over at least :data:`REPEATS` repeats; a ratio is the median of the repeats'
paired ratios, reported with its spread (smallest and largest), so it is never
assembled from runs made at different times:

1. extraction: ``cache_task`` into a fresh cache folder against the bare
   ``teacher.outputs`` passes over the same batches;
2. epoch time of ``weighted`` distillation from the cache against
   supervised-only training of the same student on the same batches (a
   cross-entropy step that runs the student on every view a distillation step
   does, without teacher targets), and against ``weighted`` with
   ``online=True``. The ``supervised`` method's own epoch (labeled images
   only, a ninth of the student work) is reported beside them, without a
   target: the difference is the unlabeled data the method trains on, not
   what the cache costs. The online/cached ratio is set against its FLOP
   ideal (:func:`ideal_online_ratio`);
3. each selection metric's time at N=5,000, D=1,024, C=10 (random data);
4. peak memory of extraction at 10,000 and 50,000 images, each in a fresh
   subprocess (the process's peak RSS is reset just before extraction).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xdistill.data.prefetch import usable_cores
from xdistill.train.config import StudentConfig

TARGETS = {"extraction_overhead": 1.10, "cached_vs_supervised": 1.15, "online_vs_cached": 2.0,
           "memory_growth": 1.10, "linear_probe_seconds": 1.0}
REPEATS = 5  # repeats of every timed comparison (the median and spread of their ratios are reported)
ONLINE_GAIN_TARGET = 0.5  # online/cached must reach at least this fraction of the ideal gain (ideal - 1)
MEMORY_SIZES = (10_000, 50_000)  # images extracted in the memory comparison
MEMORY_REPEATS = 5  # fresh processes per size


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and threads of this machine."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "logical_cores": os.cpu_count(), "usable_cores": usable_cores(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def spread(values: list[float]) -> dict[str, float]:
    """Median, smallest and largest of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _seconds(run: Callable[[], Any]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------
# (1) Extraction against bare forward passes


def extraction_overhead(task, teachers: list, workdir: Path, repeats: int = REPEATS, batch_size: int = 256) -> dict:
    """``cache_task`` on a fresh cache folder over the bare forward passes, each repeat timing both sides:
    the median of the per-repeat ratios, with their spread."""
    from xdistill.cache.extract import TeacherCache, cache_task

    for teacher in teachers:  # load, and let TorchScript's profiling executor settle, before any timing
        teacher.setup()
        for _ in range(3):
            teacher.outputs(task.labeled.x[:batch_size])

    def bare() -> None:
        for teacher in teachers:
            for split in task.splits.values():
                for start in range(0, len(split), batch_size):
                    teacher.outputs(split.x[start:start + batch_size])

    bare_times, cache_times = [], []
    for r in range(repeats):
        bare_times.append(_seconds(bare))
        cache = TeacherCache(workdir / f"extraction-{r}", batch_size=batch_size, progress=False)
        cache_times.append(_seconds(lambda: cache_task(task, teachers, cache)))
    samples = sum(len(s) for s in task.splits.values()) * len(teachers)
    bare_s, cache_s = statistics.median(bare_times), statistics.median(cache_times)
    ratios = spread([c / b for c, b in zip(cache_times, bare_times)])
    return {"teachers": len(teachers), "teacher_samples": samples, "repeats": repeats,
            "bare_forward_s": bare_s, "cache_task_s": cache_s, "ratio": ratios["median"], "ratio_spread": ratios,
            "bare_forward_runs_s": bare_times, "cache_task_runs_s": cache_times}


# ---------------------------------------------------------------------------
# (2) Epoch time: cached distillation, supervised, online teachers


def _labels_only_method(config):
    """Cross-entropy on the labels, but the student also runs on every view a distillation
    step feeds it (labeled, unlabeled and, with ``self_training``, the strong view), so each
    step computes what a distillation step computes, minus its teacher targets."""
    import torch.nn.functional as F

    from xdistill.kinds.classification.steps import student_forward
    from xdistill.train.method import Method

    def step(student, batch, ctx):
        views = [v for v in (batch.x_labeled, batch.x_unlabeled, batch.x_strong) if v is not None]
        _, logits = student_forward(student, torch.cat(views))
        ce = F.cross_entropy(logits[:len(batch.x_labeled)], batch.y_labeled)
        return {"loss": ce, "ce": ce.detach()}

    strong = bool(getattr(config, "self_training", False))
    return Method(step, "labels only, same batches as distillation", unlabeled=True, strong_views=strong)


def teacher_flops(teacher, task_shape: tuple[int, int, int]) -> int:
    """FLOPs per sample of a TorchScript image teacher on its own input size (after preprocessing)."""
    from xdistill.students import count_flops

    spec = teacher.spec.input
    shape = (spec.channels or task_shape[0], *(spec.size or task_shape[1:]))
    return count_flops(torch.jit.load(str(teacher.path), map_location="cpu"), shape)


def _epoch_seconds(curves: list[dict]) -> float:
    """Median epoch time, leaving out the first epoch (allocator and JIT warm-up) when there are more."""
    seconds = [r["seconds"] for r in curves]
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def labels_only_baseline() -> str:
    """The classification method trained on labels alone, from scratch (declared init 'none')."""
    from xdistill.kinds.classification.methods import METHODS

    return next(n for n, m in METHODS.items() if m.baseline and not m.unlabeled and m.init == "none")


def _labels_only_epoch(task, base) -> float:
    """Epoch time of the labels-only step on the batches a distillation run draws."""
    from xdistill.kinds.classification.batches import BatchSource
    from xdistill.kinds.classification.steps import FeaturesAndLogits, StepContext
    from xdistill.runtime import Runtime
    from xdistill.students import build_student
    from xdistill.train.inputs import StudentInputs
    from xdistill.train.loop import TrainPlan, train_student

    torch.manual_seed(0)
    student = build_student("cnn", task.input_shape, task.num_classes)
    method = _labels_only_method(base)
    source = BatchSource(task, StudentInputs("image"), method, base)
    plan = TrainPlan(step=method.step, context=StepContext(config=base, num_classes=task.num_classes),
                     steps_per_epoch=source.steps, batches=source.epoch, forward=FeaturesAndLogits)
    return _epoch_seconds(train_student(student, plan, base, None, Runtime(log=None)).to_json())


def ideal_online_ratio(flop_ratio: float, batch_size: int, unlabeled_ratio: int, self_training: bool) -> float:
    """Online over cached epoch time if time followed FLOPs: a cached step trains the student (forward and
    backward, ~3x a forward pass) on B labeled, U = B * unlabeled_ratio unlabeled and, with self-training,
    U strong views; an online step adds the teachers' forward passes on the U unlabeled images:
    1 + flop_ratio * U / (3 * (B + U + U_strong)), flop_ratio = teachers' FLOPs / the student's."""
    unlabeled = batch_size * unlabeled_ratio
    student_images = batch_size + unlabeled + (unlabeled if self_training else 0)
    return 1.0 + flop_ratio * unlabeled / (3.0 * student_images)


def epoch_times(task_dir: Path, zoo: Path, cache_dir: Path, epochs: int = 3, repeats: int = REPEATS) -> dict:
    """Epoch time of the labels-only method, labels-only-on-the-same-batches, cached and online distillation
    with the default teacher method."""
    from xdistill.cache.extract import TeacherCache
    from xdistill.data.task import load_task
    from xdistill.kinds.classification.prepare import prepare_teachers
    from xdistill.pipeline.distill import distill
    from xdistill.runtime import Runtime
    from xdistill.teachers.base import create_teacher
    from xdistill.teachers.zoo import load_zoo
    from xdistill.train.config import DistillConfig
    from xdistill.train.run import DistillInputs

    task = load_task(str(task_dir))
    teachers = [create_teacher(spec) for spec in load_zoo(str(zoo)).specs]
    all_teacher_flops = {t.name: teacher_flops(t, task.input_shape) for t in teachers}
    # top_k=0 mixes every teacher, so the online run carries the whole zoo's cost.
    base = DistillConfig(task=str(task_dir), zoo=str(zoo), cache_dir=str(cache_dir), epochs=epochs, top_k=0,
                         progress=False, student=StudentConfig("cnn"))
    # Ranked and bridged once: both distillation runs then differ only in where the targets come from.
    prepared = prepare_teachers(task, teachers, TeacherCache(cache_dir, progress=False), base.selection)
    runs = {"labels_only_method": {"method": labels_only_baseline()}, "distill_cached": {},
            "distill_online": {"online": True}}
    times: dict[str, list[float]] = {**{name: [] for name in runs}, "labels_only_same_batches": []}
    result = None
    quiet = Runtime(log=None, write_report=False)
    for _ in range(repeats):
        for name, overrides in runs.items():
            config = dataclasses.replace(base, **overrides)
            run = distill(config, DistillInputs(task=task, prepared=prepared), quiet)
            times[name].append(_epoch_seconds(run.metrics["curves"]))
            result = run if name == "distill_cached" else result
        times["labels_only_same_batches"].append(_labels_only_epoch(task, base))
    used = [t for t in teachers if t.name in result.targets.names]
    student_flops = result.metrics["cost"]["flops"]
    flops = {t.name: all_teacher_flops[t.name] for t in used}
    median = {k: statistics.median(v) for k, v in times.items()}
    paired = {name: spread([a / b for a, b in zip(times[top], times[bottom])]) for name, (top, bottom) in {
        "cached_vs_supervised": ("distill_cached", "labels_only_same_batches"),
        "cached_vs_supervised_method": ("distill_cached", "labels_only_method"),
        "online_vs_cached": ("distill_online", "distill_cached")}.items()}
    flop_ratio = sum(flops.values()) / student_flops
    ideal = ideal_online_ratio(flop_ratio, base.batch_size, base.unlabeled_ratio, base.self_training)
    online = paired["online_vs_cached"]["median"]
    return {"task": task.name, "method": base.method, "epochs": epochs, "repeats": repeats, "epoch_seconds": median,
            "epoch_seconds_runs": times, "student_flops": student_flops, "teacher_flops": flops,
            "flop_ratio": flop_ratio, **{name: r["median"] for name, r in paired.items()},
            "ratio_spreads": paired, "ideal_online_vs_cached": ideal,
            "online_fraction_of_ideal_gain": (online - 1.0) / (ideal - 1.0)}


# ---------------------------------------------------------------------------
# (3) Selection metrics


def metric_times(n: int = 5000, d: int = 1024, classes: int = 10, source_classes: int = 1000,
                 repeats: int = 1) -> dict[str, float]:
    """Median wall seconds of every registered metric on random teacher outputs with class structure."""
    from xdistill.bench.metric_timing import metric_timings

    return {name: wall for name, (wall, _) in metric_timings(n, d, classes, source_classes, repeats).items()}


# ---------------------------------------------------------------------------
# (4) Extraction memory, one fresh process per size


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class SyntheticCNN(torch.nn.Module):
    """A small image teacher (two conv blocks, ``2 * width``-d features, 10 classes) for the memory
    measurement (width 32: 64-d features) and the scale sweep."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        conv = torch.nn.Conv2d
        self.body = torch.nn.Sequential(conv(1, width, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                        conv(width, 2 * width, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(2 * width, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


def extraction_memory_child(n: int, workdir: str, threads: int) -> dict:
    """In a fresh process: cache one small CNN teacher over ``n`` synthetic 28x28 uint8 images."""
    import gc

    import psutil

    from xdistill.cache.extract import TeacherCache, cache_task
    from xdistill.data import task_from_arrays
    from xdistill.teachers import InputSpec, ModuleTeacher

    torch.set_num_threads(threads)
    folder = Path(workdir)
    torch.manual_seed(0)
    teacher = ModuleTeacher("cnn-synthetic", SyntheticCNN(), input=InputSpec(channels=1, mean=(0.5,), std=(0.5,)),
                            labels=[str(i) for i in range(10)])
    rng = np.random.default_rng(0)
    labeled = (rng.integers(0, 256, (100, 28, 28), dtype=np.uint8), np.arange(100) % 10)
    test = (rng.integers(0, 256, (100, 28, 28), dtype=np.uint8), np.arange(100) % 10)
    task = task_from_arrays("synthetic", [str(i) for i in range(10)], labeled,
                            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), test)
    teacher.outputs(task.labeled.x[:100])  # loads the teacher and makes torch's first-call allocations
    gc.collect()
    reset = _reset_peak_rss()
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    cache_task(task, [teacher], TeacherCache(folder / "cache", progress=False))
    seconds = time.perf_counter() - started
    peak = _peak_rss_bytes()
    return {"n": n, "images_bytes": int(task.unlabeled.x.nbytes), "rss_before_bytes": before, "peak_rss_bytes": peak,
            "extraction_peak_increase_bytes": peak - before, "peak_reset": reset, "seconds": seconds}


def extraction_memory(n: int, threads: int) -> dict:
    """Run :func:`extraction_memory_child` in a fresh interpreter and return what it measured."""
    import xdistill

    source = str(Path(xdistill.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": source + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="xdistill-perf-") as workdir:
        code = ("import json, sys; from xdistill.bench.perf import extraction_memory_child as f; "
                f"print(json.dumps(f({n}, sys.argv[1], {threads})))")
        proc = subprocess.run([sys.executable, "-c", code, workdir], capture_output=True, text=True, env=env,
                              check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"extraction memory run at n={n} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------


def run_perf(task_dir: Path, zoo: Path, out: Path | None = None, quick: bool = False,
             log: Callable[[str], None] | None = print) -> dict:
    """Every measurement above on one target (the demo's first, from the CLI); writes ``out/perf.json``
    and ``out/perf.md``."""
    from xdistill.data.task import load_task
    from xdistill.io import atomic_write_json, atomic_write_text
    from xdistill.teachers.base import create_teacher
    from xdistill.teachers.zoo import load_zoo

    say = log or (lambda _: None)
    task = load_task(str(task_dir))
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "task": task.name}
    with tempfile.TemporaryDirectory(prefix="xdistill-perf-") as tmp:
        say("perf: extraction against bare teacher forward passes")
        teachers = [create_teacher(spec) for spec in load_zoo(zoo).specs]
        results["extraction"] = extraction_overhead(task, teachers, Path(tmp))
        say("perf: epoch times (supervised, same batches, cached and online distillation)")
        results["epochs"] = epoch_times(task_dir, zoo, Path(tmp) / "extraction-0",
                                        epochs=2 if quick else 3)
    say("perf: selection metrics at N=5000, D=1024, C=10")
    results["metrics"] = {"n": 5000, "d": 1024, "classes": 10, "source_classes": 1000,
                          "seconds": metric_times(repeats=REPEATS)}
    say("perf: extraction memory at 10,000 and 50,000 images (fresh processes)")
    # The peak is set by one batch's transient buffers, whose size the allocator varies from
    # process to process by tens of MiB; medians of several fresh processes compare the sizes.
    runs = {n: [extraction_memory(n, torch.get_num_threads()) for _ in range(MEMORY_REPEATS)] for n in MEMORY_SIZES}
    median = {n: statistics.median(r["extraction_peak_increase_bytes"] for r in rs) for n, rs in runs.items()}
    results["memory"] = {"runs": [r for rs in runs.values() for r in rs], "median_increase_bytes": median,
                         "growth": median[MEMORY_SIZES[1]] / max(1, median[MEMORY_SIZES[0]])}
    results["targets"] = verdicts(results)
    results["machine"]["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if out is not None:
        atomic_write_json(Path(out) / "perf.json", results)
        atomic_write_text(Path(out) / "perf.md", perf_markdown(results))
    say(perf_markdown(results))
    return results


def verdicts(results: dict) -> dict[str, dict]:
    """Each figure against its target. Online/cached must reach half the ideal gain,
    1 + ONLINE_GAIN_TARGET * (ideal - 1), when the ideal is known (else the fixed TARGETS value)."""
    e, m = results["epochs"], results["memory"]
    ideal = e.get("ideal_online_vs_cached")
    online_target = TARGETS["online_vs_cached"] if ideal is None else round(1 + ONLINE_GAIN_TARGET * (ideal - 1), 3)
    checks = {
        "extraction_overhead": (results["extraction"]["ratio"], "<=", TARGETS["extraction_overhead"]),
        "cached_vs_supervised": (e["cached_vs_supervised"], "<=", TARGETS["cached_vs_supervised"]),
        "online_vs_cached": (e["online_vs_cached"], ">=", online_target),
        "memory_growth": (m["growth"], "<=", TARGETS["memory_growth"]),
    }
    probe = results.get("metrics", {}).get("seconds", {}).get("linear_probe_accuracy")
    if probe is not None:
        checks["linear_probe_seconds"] = (probe, "<", TARGETS["linear_probe_seconds"])
    return {k: {"value": v, "target": f"{op} {t}", "met": v <= t if op == "<=" else (v < t if op == "<" else v >= t)}
            for k, (v, op, t) in checks.items()}


def perf_markdown(results: dict) -> str:
    mach, ext, ep, mem = results["machine"], results["extraction"], results["epochs"], results["memory"]
    mb = 1024 * 1024
    lines = [f"Machine: {mach['cpu']}; {mach['usable_cores']} usable of {mach['logical_cores']} logical cores; "
             f"torch {mach['torch']} with {mach['torch_threads']} thread(s); Python {mach['python']}; "
             f"load average {', '.join(f'{x:.2f}' for x in mach.get('load_average') or [])}.", "",
             "| measurement | value | target | met |", "|---|---|---|---|"]
    t = results["targets"]

    def row(label: str, key: str, value: str) -> None:
        lines.append(f"| {label} | {value} | {t[key]['target']} | {'yes' if t[key]['met'] else 'no'} |")

    def spread_of(found: dict | None) -> str:
        return "" if not found else f" (spread {found['min']:.3f}-{found['max']:.3f})"

    spreads = ep.get("ratio_spreads", {})
    row(f"extraction / bare forward ({ext['teachers']} teachers, {ext['teacher_samples']} teacher-samples; "
        f"{ext['cache_task_s']:.2f} s / {ext['bare_forward_s']:.2f} s)", "extraction_overhead",
        f"{ext['ratio']:.3f}x{spread_of(ext.get('ratio_spread'))}")
    s = ep["epoch_seconds"]
    method = ep.get("method", "distillation")
    row(f"epoch: cached {method} / supervised-only training on the same batches ({s['distill_cached']:.2f} s / "
        f"{s['labels_only_same_batches']:.2f} s)", "cached_vs_supervised",
        f"{ep['cached_vs_supervised']:.3f}x{spread_of(spreads.get('cached_vs_supervised'))}")
    lines.append(f"| epoch: cached {method} / the labels-only method, labeled images only ({s['distill_cached']:.2f} s "
                 f"/ {s['labels_only_method']:.2f} s; a ninth of the student work per step) | "
                 f"{ep['cached_vs_supervised_method']:.2f}x | none (not a cache cost) | - |")
    ideal = ep.get("ideal_online_vs_cached")
    row(f"epoch: online {method} / cached {method} ({s['distill_online']:.2f} s / {s['distill_cached']:.2f} s; "
        f"teachers {ep['flop_ratio']:.1f}x the student's FLOPs"
        + (f"; FLOP ideal {ideal:.2f}x, target half its gain" if ideal else "") + ")", "online_vs_cached",
        f"{ep['online_vs_cached']:.2f}x{spread_of(spreads.get('online_vs_cached'))}")
    small, large = (mem["median_increase_bytes"][n] for n in sorted(mem["median_increase_bytes"], key=int))
    row(f"extraction peak-RSS increase, 50,000 / 10,000 images (medians of {MEMORY_REPEATS} processes: "
        f"{large / mb:.1f} MiB / {small / mb:.1f} MiB)", "memory_growth", f"{mem['growth']:.3f}x")
    lines += ["", f"Selection metrics on random data, N={results['metrics']['n']}, D={results['metrics']['d']}, "
              f"C={results['metrics']['classes']} (probabilities over {results['metrics']['source_classes']} "
              "source classes):", "", "| metric | seconds |", "|---|---|"]
    lines += [f"| {name} | {sec:.3f} |" for name, sec in results["metrics"]["seconds"].items()]
    if "linear_probe_seconds" in t:
        probe = t["linear_probe_seconds"]
        lines += ["", (f"linear_probe_accuracy: {probe['value']:.3f} s, target {probe['target']} s, "
                       f"met: {'yes' if probe['met'] else 'no'}.")]
    lines += ["", "| images | image bytes (MiB) | RSS before extraction (MiB) | peak RSS (MiB) | increase (MiB) |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['images_bytes'] / mb:.1f} | {r['rss_before_bytes'] / mb:.1f} | "
              f"{r['peak_rss_bytes'] / mb:.1f} | {r['extraction_peak_increase_bytes'] / mb:.1f} |" for r in mem["runs"]]
    return "\n".join(lines) + "\n"
