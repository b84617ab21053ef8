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
SWEEP_EPOCHS = 4  # epochs of the distill run; images/s is the median over all but the first
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


def run_case_child(layout: str, n: int, workdir: str, steps: int) -> dict[str, Any]:
    """One sweep case (run in a fresh interpreter): write the task, then cache and distill through the CLI,
    each in its own child process."""
    from xdistill.train.config import DistillConfig

    work = Path(workdir)
    zoo = write_sweep_zoo(work / "zoo")
    task = work / "task"
    started = time.perf_counter()
    write_sweep_task(task, n, layout)
    write_s = time.perf_counter() - started
    cache_dir, run_dir = work / "cache", work / "run"
    cache_json, distill_json = work / "cache.json", work / "distill.json"
    cache = run_measured(["cache", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache_dir),
                          "--json", str(cache_json)])
    cache_summary = json.loads(cache_json.read_text())
    cache_bytes = _cache_bytes(cache_dir)
    distill = run_measured(["distill", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache_dir),
                            "--out", str(run_dir), "--epochs", str(SWEEP_EPOCHS), "--json", str(distill_json),
                            f"max_steps_per_epoch={steps}", "progress=false"])
    metrics = json.loads(distill_json.read_text())
    epoch_s = [float(e["seconds"]) for e in metrics["curves"]]
    steady_s = float(np.median(epoch_s[1:] if len(epoch_s) > 1 else epoch_s))
    defaults = DistillConfig()
    batch, ratio = defaults.batch_size, defaults.unlabeled_ratio
    teacher_samples = n + 2 * SPLIT_SIZE
    return {
        "layout": layout, "n": n, "write_s": write_s,
        "cache": {"peak_rss_bytes": cache["peak_rss_bytes"], "wall_s": cache["wall_s"],
                  "extraction_s": cache_summary["seconds"],
                  "compute_s": sum(cache_summary["compute_seconds"].values()),
                  "images_per_s": teacher_samples / sum(cache_summary["compute_seconds"].values()),
                  "cache_bytes": cache_bytes, "bytes_per_image": cache_bytes / teacher_samples},
        "distill": {"peak_rss_bytes": distill["peak_rss_bytes"], "wall_s": distill["wall_s"], "steps": steps,
                    "epoch_s": epoch_s, "images_per_s": steps * batch * (1 + ratio) / steady_s},
    }


def run_case(layout: str, n: int, steps: int = SWEEP_STEPS, workdir: Path | None = None) -> dict[str, Any]:
    """:func:`run_case_child` in a fresh interpreter, in a temporary folder removed afterwards."""
    import xdistill

    source = str(Path(xdistill.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": source + os.pathsep + os.environ.get("PYTHONPATH", "")}
    work = Path(tempfile.mkdtemp(prefix=f"xdistill-sweep-{layout}-{n}-", dir=workdir))
    try:
        code = ("import json, sys; from xdistill.bench.sweep import run_case_child as f; "
                f"print(json.dumps(f({layout!r}, {n}, sys.argv[1], {steps})))")
        proc = subprocess.run([sys.executable, "-c", code, str(work)], capture_output=True, text=True, env=env,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"sweep case {layout} n={n} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_sweep(out: Path | None = None, cases: Sequence[tuple[str, int]] = SWEEP_CASES, steps: int = SWEEP_STEPS,
              workdir: Path | None = None, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Every case of the sweep, one after another; writes ``out/sweep.json`` and ``out/sweep.md`` when given."""
    from xdistill.bench.perf import machine
    from xdistill.io import atomic_write_json, atomic_write_text

    say = log or (lambda _: None)
    results: dict[str, Any] = {"machine": machine(), "steps": steps, "epochs": SWEEP_EPOCHS,
                               "teacher_width": SWEEP_TEACHER_WIDTH,
                               "cases": []}
    for layout, n in cases:
        say(f"sweep: {layout} pool of {n:,} images")
        results["cases"].append(run_case(layout, n, steps, workdir))
    results["machine"]["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["ratios"] = sweep_ratios(results["cases"])
    if out is not None:
        atomic_write_json(Path(out) / "sweep.json", results)
        atomic_write_text(Path(out) / "sweep.md", sweep_markdown(results))
    say(sweep_markdown(results))
    return results


def sweep_ratios(cases: list[dict]) -> dict[str, dict[str, float]]:
    """Largest over smallest pool of each layout: peak RSS and images per second of cache and distill."""
    ratios = {}
    for layout in sorted({c["layout"] for c in cases}):
        mine = sorted((c for c in cases if c["layout"] == layout), key=lambda c: c["n"])
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        ratios[f"{layout} {large['n']:,} / {small['n']:,}"] = {
            f"{verb} {what}": large[verb][key] / small[verb][key]
            for verb in ("cache", "distill") for what, key in (("peak RSS", "peak_rss_bytes"),
                                                               ("images/s", "images_per_s"))
        }
    return ratios


def sweep_markdown(results: dict) -> str:
    mach, mb = results["machine"], 1024 * 1024
    load = ", ".join(f"{x:.2f}" for x in mach.get("load_average") or [])
    after = ", ".join(f"{x:.2f}" for x in mach.get("load_average_after") or [])
    lines = [(f"Machine: {mach['cpu']}; {mach['usable_cores']} usable of {mach['logical_cores']} logical cores; "
              f"torch {mach['torch']}; load average {load} before, {after} after."),
             (f"Teacher: SyntheticCNN width {results['teacher_width']}; distill: {results.get('epochs', 1)} epochs of "
              f"{results['steps']} steps (images/s: median epoch after the first)."), "",
             ("| pool | images | cache peak RSS (MiB) | extraction images/s | cache bytes/image | distill peak RSS (MiB) "
              "| training images/s |"), "|---|---|---|---|---|---|---|"]
    for c in results["cases"]:
        lines.append(f"| {'x.npy memmap' if c['layout'] == 'npy' else 'PNG folder'} | {c['n']:,} | "
                     f"{c['cache']['peak_rss_bytes'] / mb:.0f} | {c['cache']['images_per_s']:,.0f} | "
                     f"{c['cache']['bytes_per_image']:.1f} | {c['distill']['peak_rss_bytes'] / mb:.0f} | "
                     f"{c['distill']['images_per_s']:,.0f} |")
    lines += ["", "| ratio | cache peak RSS | cache images/s | distill peak RSS | distill images/s |",
              "|---|---|---|---|---|"]
    for name, r in results["ratios"].items():
        lines.append(f"| {name} | {r['cache peak RSS']:.3f}x | {r['cache images/s']:.3f}x | "
                     f"{r['distill peak RSS']:.3f}x | {r['distill images/s']:.3f}x |")
    return "\n".join(lines) + "\n"
