"""``xdistill bench --perf --sweep``: time and memory of ``xdistill cache`` and
``xdistill distill`` as the target pool grows.

Synthetic 28x28 uint8 images are written to disk as the pool (the unlabeled
split) of a task, as a memory-mapped ``x.npy`` split folder and as a folder of
PNG files; labeled and test splits hold 200 images each in the same form. One
small CNN teacher (:class:`xdistill.bench.perf.SyntheticCNN`) is cached over
the task, then a student is distilled for a few epochs of a fixed number of steps.
Each command runs as the real CLI in a fresh process, whose peak resident
memory (``ru_maxrss`` of that child, so file pages of memory maps count too)
and wall time are recorded. Images per second are taken from the work itself,
not from what every run pays once whatever the pool's size: extraction's from
the seconds spent producing the teacher's outputs (``compute_seconds`` of
``xdistill cache --json``: reading and decoding inputs and running the
teacher, without loading it, checking the cache or writing shards); training's
from the median of the epochs after the first (each a fixed number of steps),
which leaves out the first epoch's warm-up and damps a shared machine's load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SWEEP_CASES = (("npy", 10_000), ("npy", 100_000), ("npy", 1_000_000), ("png", 10_000), ("png", 100_000))
SWEEP_STEPS = 40  # training steps of each epoch of the distill run (capped): the same work at every pool size
SWEEP_EPOCHS = 3  # epochs of the distill run; images/s is the median over all but the first
SWEEP_REPEATS = 3  # rounds of measurement of every case; each figure is the median over the rounds
SWEEP_TEACHER_WIDTH = 8  # SyntheticCNN width of the sweep's teacher (~0.6 MFLOPs per image)
SPLIT_SIZE = 200  # images in the labeled and in the test split
IMAGE_SIDE = 28
CLASSES = [str(c) for c in range(10)]
WRITE_CHUNK = 65_536  # images generated and written at a time


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)


def _write_png_split(folder: Path, images: np.ndarray, labels: np.ndarray | None, offset: int = 0) -> None:
    from PIL import Image

    for i, image in enumerate(images):
        target = folder if labels is None else folder / CLASSES[int(labels[i])]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target / f"{offset + i:07d}.png")


def write_sweep_task(folder: Path, n: int, layout: str, seed: int = 0) -> Path:
    """A task folder whose unlabeled split holds ``n`` random 28x28 uint8 images, written in chunks:
    ``layout="npy"`` as split folders holding ``x.npy`` (+ ``y.npy``), ``"png"`` as image folders."""
    from xdistill.data.lazy import release_pages
    from xdistill.data.splits import save_split_folder

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    labels = np.arange(SPLIT_SIZE) % len(CLASSES)
    for name in ("labeled", "test"):
        x = _images(rng, SPLIT_SIZE)
        if layout == "npy":
            save_split_folder(folder / name, x, labels)
        else:
            _write_png_split(folder / name, x, labels)
    pool = folder / "unlabeled"
    if layout == "npy":
        pool.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(pool / "x.npy", mode="w+", dtype=np.uint8, shape=(n, IMAGE_SIDE, IMAGE_SIDE))
        for start in range(0, n, WRITE_CHUNK):
            out[start:start + WRITE_CHUNK] = _images(rng, min(WRITE_CHUNK, n - start))
            out.flush()
            release_pages(out)
        del out
    else:
        for start in range(0, n, WRITE_CHUNK):
            _write_png_split(pool, _images(rng, min(WRITE_CHUNK, n - start)), None, offset=start)
    splits = {"labeled": "labeled", "unlabeled": "unlabeled", "test": "test"}
    header = {"name": f"sweep-{layout}-{n}", "classes": CLASSES, "input": "image", "splits": splits}
    (folder / "task.yaml").write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
    return folder


def write_sweep_zoo(folder: Path, width: int = SWEEP_TEACHER_WIDTH) -> Path:
    """A zoo of one SyntheticCNN teacher with fixed (seed 0) weights."""
    import torch
    from safetensors.torch import save_file

    from xdistill.bench.perf import SyntheticCNN

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_file(SyntheticCNN(width).state_dict(), str(folder / "teacher.safetensors"))
    entry = {"name": "cnn-synthetic", "kind": "module", "factory": "xdistill.bench.perf:SyntheticCNN",
             "weights": "teacher.safetensors", "kwargs": {"width": width},
             "input": {"channels": 1, "mean": [0.5], "std": [0.5]}, "labels": CLASSES}
    (folder / "zoo.yaml").write_text(json.dumps({"teachers": [entry]}, indent=2) + "\n", encoding="utf-8")
    return folder / "zoo.yaml"


def run_measured(args: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m xdistill ARGS`` in a fresh process: its own peak RSS (bytes, from ``wait4``) and wall seconds."""
    import xdistill

    source = str(Path(xdistill.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": source + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "xdistill", *args], stdout=subprocess.DEVNULL, stderr=stderr,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"xdistill {' '.join(args)} failed ({proc.returncode}):\n{stderr.read()[-3000:]}")
    return {"peak_rss_bytes": usage.ru_maxrss * 1024, "wall_s": seconds}


def _cache_bytes(cache_dir: Path) -> int:
    return sum(p.stat().st_size for p in (cache_dir / "entries").rglob("shard-*.safetensors"))


def measure_case(layout: str, n: int, task: Path, zoo: Path, work: Path, steps: int) -> dict[str, Any]:
    """One repeat of one case: ``xdistill cache`` into an empty cache folder, then ``xdistill distill``, each
    the real CLI in its own child process; the cache and run folders are removed afterwards."""
    from xdistill.train.config import DistillConfig

    cache_dir, run_dir = work / "cache", work / "run"
    cache_json, distill_json = work / "cache.json", work / "distill.json"
    for folder in (cache_dir, run_dir):
        shutil.rmtree(folder, ignore_errors=True)
    try:
        cache = run_measured(["cache", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache_dir),
                              "--json", str(cache_json)])
        cache_summary = json.loads(cache_json.read_text())
        cache_bytes = _cache_bytes(cache_dir)
        distill = run_measured(["distill", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache_dir),
                                "--out", str(run_dir), "--epochs", str(SWEEP_EPOCHS), "--json", str(distill_json),
                                f"max_steps_per_epoch={steps}", "progress=false"])
        metrics = json.loads(distill_json.read_text())
    finally:
        for folder in (cache_dir, run_dir):
            shutil.rmtree(folder, ignore_errors=True)
    epoch_s = [float(e["seconds"]) for e in metrics["curves"]]
    steady_s = float(np.median(epoch_s[1:] if len(epoch_s) > 1 else epoch_s))
    defaults = DistillConfig()
    batch, ratio = defaults.batch_size, defaults.unlabeled_ratio
    teacher_samples = n + 2 * SPLIT_SIZE
    compute_s = sum(cache_summary["compute_seconds"].values())
    return {
        "cache": {"peak_rss_bytes": cache["peak_rss_bytes"], "wall_s": cache["wall_s"],
                  "extraction_s": cache_summary["seconds"], "compute_s": compute_s,
                  "images_per_s": teacher_samples / compute_s,
                  "cache_bytes": cache_bytes, "bytes_per_image": cache_bytes / teacher_samples},
        "distill": {"peak_rss_bytes": distill["peak_rss_bytes"], "wall_s": distill["wall_s"], "steps": steps,
                    "epoch_s": epoch_s, "images_per_s": steps * batch * (1 + ratio) / steady_s},
    }


MEASURED = {"cache": ("peak_rss_bytes", "images_per_s", "bytes_per_image", "wall_s"),
            "distill": ("peak_rss_bytes", "images_per_s", "wall_s")}


def summarise_case(layout: str, n: int, write_s: float, repeats: list[dict]) -> dict[str, Any]:
    """A case's medians over its repeats (each repeat kept under ``repeats``)."""
    out: dict[str, Any] = {"layout": layout, "n": n, "write_s": write_s, "repeats": repeats}
    for verb, keys in MEASURED.items():
        out[verb] = {key: float(np.median([r[verb][key] for r in repeats])) for key in keys}
    return out


def run_sweep(out: Path | None = None, cases: Sequence[tuple[str, int]] = SWEEP_CASES, steps: int = SWEEP_STEPS,
              workdir: Path | None = None, log: Callable[[str], None] | None = print,
              repeats: int = SWEEP_REPEATS) -> dict[str, Any]:
    """Write every case's task once, then measure every case ``repeats`` times, round by round (the order of the
    cases reversed every other round, so a change in the machine's load falls on every size alike); writes
    ``out/sweep.json`` and ``out/sweep.md`` when given."""
    from xdistill.bench.perf import machine
    from xdistill.io import atomic_write_json, atomic_write_text

    say = log or (lambda _: None)
    results: dict[str, Any] = {"machine": machine(), "steps": steps, "epochs": SWEEP_EPOCHS, "repeats": repeats,
                               "teacher_width": SWEEP_TEACHER_WIDTH, "cases": []}
    root = Path(tempfile.mkdtemp(prefix="xdistill-sweep-", dir=workdir))
    try:
        zoo = write_sweep_zoo(root / "zoo")
        tasks, write_s = {}, {}
        for layout, n in cases:
            say(f"sweep: writing a {layout} pool of {n:,} images")
            started = time.perf_counter()
            tasks[layout, n] = write_sweep_task(root / f"{layout}-{n}", n, layout)
            write_s[layout, n] = time.perf_counter() - started
        measured: dict[tuple[str, int], list[dict]] = {case: [] for case in tasks}
        for r in range(repeats):
            for layout, n in (cases if r % 2 == 0 else list(reversed(cases))):
                say(f"sweep: repeat {r + 1}/{repeats}, {layout} pool of {n:,} images")
                measured[layout, n].append(measure_case(layout, n, tasks[layout, n], zoo, root / "work", steps))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["cases"] = [summarise_case(layout, n, write_s[layout, n], measured[layout, n]) for layout, n in cases]
    results["machine"]["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["ratios"] = sweep_ratios(results["cases"])
    if out is not None:
        atomic_write_json(Path(out) / "sweep.json", results)
        atomic_write_text(Path(out) / "sweep.md", sweep_markdown(results))
    say(sweep_markdown(results))
    return results


def sweep_ratios(cases: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Largest over smallest pool of each layout, per repeat (the two measured in the same round): the median
    and the smallest and largest ratio of peak RSS and images per second of cache and distill."""
    ratios = {}
    for layout in sorted({c["layout"] for c in cases}):
        mine = sorted((c for c in cases if c["layout"] == layout), key=lambda c: c["n"])
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        rounds = list(zip(small.get("repeats") or [small], large.get("repeats") or [large]))
        entry = {}
        for verb in ("cache", "distill"):
            for what, key in (("peak RSS", "peak_rss_bytes"), ("images/s", "images_per_s")):
                values = [b[verb][key] / a[verb][key] for a, b in rounds]
                entry[f"{verb} {what}"] = {"median": float(np.median(values)), "min": float(min(values)),
                                           "max": float(max(values))}
        ratios[f"{layout} {large['n']:,} / {small['n']:,}"] = entry
    return ratios


def sweep_markdown(results: dict) -> str:
    mach, mb = results["machine"], 1024 * 1024
    load = ", ".join(f"{x:.2f}" for x in mach.get("load_average") or [])
    after = ", ".join(f"{x:.2f}" for x in mach.get("load_average_after") or [])
    lines = [(f"Machine: {mach['cpu']}; {mach['usable_cores']} usable of {mach['logical_cores']} logical cores; "
              f"torch {mach['torch']}; load average {load} before, {after} after."),
             (f"Teacher: SyntheticCNN width {results['teacher_width']}; distill: {results.get('epochs', 1)} epochs of "
              f"{results['steps']} steps (images/s: median epoch after the first); every figure the median of "
              f"{results.get('repeats', 1)} repeats."), "",
             ("| pool | images | cache peak RSS (MiB) | extraction images/s | cache bytes/image | distill peak RSS (MiB) "
              "| training images/s |"), "|---|---|---|---|---|---|---|"]
    for c in results["cases"]:
        lines.append(f"| {'x.npy memmap' if c['layout'] == 'npy' else 'PNG folder'} | {c['n']:,} | "
                     f"{c['cache']['peak_rss_bytes'] / mb:.0f} | {c['cache']['images_per_s']:,.0f} | "
                     f"{c['cache']['bytes_per_image']:.1f} | {c['distill']['peak_rss_bytes'] / mb:.0f} | "
                     f"{c['distill']['images_per_s']:,.0f} |")
    lines += ["", "Ratios, largest over smallest pool, per repeat: median (smallest-largest).", "",
              "| ratio | cache peak RSS | cache images/s | distill peak RSS | distill images/s |",
              "|---|---|---|---|---|"]
    for name, r in results["ratios"].items():
        cells = [f"{r[k]['median']:.3f}x ({r[k]['min']:.2f}-{r[k]['max']:.2f})"
                 for k in ("cache peak RSS", "cache images/s", "distill peak RSS", "distill images/s")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
