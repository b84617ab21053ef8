"""Kill ``xdistill cache`` / ``xdistill distill`` with SIGKILL at seeded moments, resume, compare.

Run by ``test_crash.py`` as one subprocess::

    python -m tests.reliability.crash_driver {cache,distill} WORK --task T --zoo Z --kills 20 --seed 0 --report R

Python with torch, scikit-learn and matplotlib takes seconds to start, far longer
than a run on the tiny task, so this process imports everything once (by doing
one run in-process) and then forks every run: the child calls the CLI's
``main(argv)`` exactly as ``python -m xdistill`` does, and the parent kills it
with SIGKILL at a chosen moment, checks that every file left parses, runs the
resume (``cache`` again; ``distill --resume`` when a checkpoint exists, else a
fresh run) in a new child and compares the result with an uninterrupted run.

Kill moments are spread over the measured duration of an uninterrupted run:
one per equal slice of [0, D] at a seeded random offset; for ``distill`` half
of them fall in the training-and-saving window, where the writes are.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

import threading  # noqa: E402

import tqdm  # noqa: E402

# tqdm guards its writes with a multiprocessing lock, a semaphore that forked children would
# share: a child killed while holding it would block every later child. A plain per-process lock
# is copied, not shared, by fork. And no monitor thread, whose locks a child could inherit held.
tqdm.tqdm.set_lock(threading.RLock())
tqdm.tqdm.monitor_interval = 0

from tests.reliability.files import cache_differences, student_differences, temp_files, unreadable_files  # noqa: E402
from xdistill.cli.main import main  # noqa: E402

CACHE_ARGS = ["batch_size=2", "shard_size=4"]  # many small shards: many writes to interrupt
CHILD_TIMEOUT = 120  # seconds; a run on the tiny task takes a few
DISTILL_ARGS = ["--method", "weighted", "--epochs", "4", "batch_size=4", "progress=false", "threads=1"]


def run_in_process(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def spawn(argv: list[str], log: Path) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        faulthandler.dump_traceback_later(CHILD_TIMEOUT, exit=True)  # a hung child reports where it hangs
        code = run_in_process(argv)
    except BaseException:  # the child reports anything and never returns into the driver
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def run_to_end(argv: list[str], log: Path, watch: dict[str, Path] | None = None) -> tuple[int, float, dict[str, float]]:
    """Run a child to its end; returns its exit code, its duration and when each watched file appeared."""
    started = time.monotonic()
    pid = spawn(argv, log)
    seen: dict[str, float] = {}
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        now = time.monotonic() - started
        for name, path in (watch or {}).items():
            if name not in seen and path.exists():
                seen[name] = now
        if done:
            return exit_code(status), now, seen
        time.sleep(0.002)


def run_killed(argv: list[str], log: Path, at: float) -> tuple[bool, int]:
    """Start a child and SIGKILL it ``at`` seconds later; returns (killed, exit code)."""
    started = time.monotonic()
    pid = spawn(argv, log)
    while time.monotonic() - started < at:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return False, exit_code(status)
        time.sleep(min(0.002, max(0.0, at - (time.monotonic() - started))))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = exit_code(status)
    return code == -signal.SIGKILL, code


def stratified(rng: np.random.Generator, n: int, low: float, high: float) -> list[float]:
    """One moment in each of ``n`` equal slices of [low, high]."""
    width = (high - low) / n
    return [low + (i + rng.random()) * width for i in range(n)]


def checkpoint_epoch(out: Path) -> int | None:
    from safetensors import safe_open

    path = out / "checkpoint.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="numpy") as handle:
        return json.loads((handle.metadata() or {})["state"])["epoch"]


def cache_state(cache: Path) -> dict:
    entries = cache / "entries"
    return {"shards": len(list(entries.glob("*/shard-*.safetensors"))) if entries.exists() else 0,
            "entries": len(list(entries.glob("*/entry.json"))) if entries.exists() else 0,
            "manifest": (cache / "manifest.json").is_file()}


def drive_cache(work: Path, task: str, zoo: str, kills: int, rng: np.random.Generator) -> dict:
    def argv(cache: Path, summary: Path) -> list[str]:
        return ["cache", "--task", task, "--zoo", zoo, "--cache", str(cache), "--json", str(summary), *CACHE_ARGS]

    logs = work / "logs"
    logs.mkdir(parents=True)
    assert run_in_process(argv(work / "warm", work / "warm.json")) == 0, "warm-up run failed"
    reference = work / "reference"
    code, duration, _ = run_to_end(argv(reference, work / "reference.json"), logs / "reference.log")
    assert code == 0, (logs / "reference.log").read_text()
    problems = cache_differences(work / "warm", reference)  # a forked run equals an in-process one
    assert not problems, problems
    total = json.loads((work / "reference.json").read_text())["queries"]
    moments = stratified(rng, kills, 0.02 * duration, 0.98 * duration)
    points = []
    attempt = 0
    while sum(p["killed"] for p in points) < kills and attempt < 3 * kills:
        at = moments[attempt] if attempt < len(moments) else float(rng.uniform(0.02, 0.8) * duration)
        folder, summary = work / f"cache-{attempt:02d}", work / f"summary-{attempt:02d}.json"
        killed, code = run_killed(argv(folder, work / "killed.json"), logs / f"killed-{attempt:02d}.log", at)
        point = {"at": round(at, 4), "killed": killed, "code": code, "state": cache_state(folder),
                 "unreadable_after_kill": unreadable_files(folder), "temp_files": len(temp_files(folder))}
        code, _, _ = run_to_end(argv(folder, summary), logs / f"resume-{attempt:02d}.log")
        point["resume_code"] = code
        if code == 0:
            result = json.loads(summary.read_text())
            point["recomputed_shards"] = result["recomputed_shards"]
            point["queries"] = result["queries"]
            point["reused"] = result["reused"]
            point["accounted"] = all(result["queries"].get(t, 0) + result["reused"].get(t, 0) == n for t, n in total.items())
        else:
            point["log"] = (logs / f"resume-{attempt:02d}.log").read_text()[-2000:]
        point["unreadable_after_resume"] = unreadable_files(folder)
        point["differences"] = cache_differences(folder, reference) if code == 0 else ["resume failed"]
        points.append(point)
        shutil.rmtree(folder)
        attempt += 1
    return {"verb": "cache", "duration": duration, "points": points}


def drive_distill(work: Path, task: str, zoo: str, kills: int, rng: np.random.Generator) -> dict:
    cache = work / "cache"

    def argv(out: Path) -> list[str]:
        return ["distill", "--task", task, "--zoo", zoo, "--cache", str(cache), "--out", str(out), *DISTILL_ARGS]

    logs = work / "logs"
    logs.mkdir(parents=True)
    assert run_in_process(argv(work / "warm")) == 0, "warm-up run failed"
    reference = work / "reference"
    watch = {"checkpoint": reference / "checkpoint.safetensors", "student": reference / "student.safetensors"}
    code, duration, seen = run_to_end(argv(reference), logs / "reference.log", watch)
    assert code == 0, (logs / "reference.log").read_text()
    problems = student_differences(work / "warm", reference)
    assert not problems, problems
    # Training starts about one epoch before the first checkpoint and ends with the student's file.
    saved = seen.get("student", duration)
    train_start = max(0.0, seen.get("checkpoint", 0.5 * duration) - 0.25 * (saved - seen.get("checkpoint", 0.0)))
    half = kills // 2
    moments = stratified(rng, kills - half, 0.0, duration) + stratified(rng, half, train_start, min(duration, saved + 0.05))
    moments = [m for pair in zip(moments[:kills - half], moments[kills - half:]) for m in pair] + moments[2 * half:]
    points = []
    attempt = 0
    while sum(p["killed"] for p in points) < kills and attempt < 3 * kills:
        at = moments[attempt] if attempt < len(moments) else float(rng.uniform(0.0, 0.9) * duration)
        out = work / f"out-{attempt:02d}"
        killed, code = run_killed(argv(out), logs / f"killed-{attempt:02d}.log", at)
        point = {"at": round(at, 4), "killed": killed, "code": code,
                 "unreadable_after_kill": unreadable_files(out) + unreadable_files(cache),
                 "temp_files": len(temp_files(out)) + len(temp_files(cache))}
        try:
            point["checkpoint_epoch"] = checkpoint_epoch(out)
        except Exception as exc:  # an unreadable checkpoint is reported, never assumed away
            point["checkpoint_epoch"] = f"unreadable: {exc}"
        point["student_written"] = (out / "student.safetensors").is_file()
        resume = point["checkpoint_epoch"] is not None
        point["resumed_with"] = "--resume" if resume else "fresh run"
        code, _, _ = run_to_end(argv(out) + (["--resume"] if resume else []), logs / f"resume-{attempt:02d}.log")
        point["resume_code"] = code
        if code != 0:
            point["log"] = (logs / f"resume-{attempt:02d}.log").read_text()[-2000:]
        point["unreadable_after_resume"] = unreadable_files(out) + unreadable_files(cache)
        point["differences"] = student_differences(out, reference) if code == 0 else ["resume failed"]
        if code == 0:
            curves = json.loads((out / "metrics.json").read_text())["curves"]
            if [c["epoch"] for c in curves] != [1, 2, 3, 4]:
                point["differences"].append(f"epochs in metrics.json: {[c['epoch'] for c in curves]}")
        points.append(point)
        shutil.rmtree(out)
        attempt += 1
    return {"verb": "distill", "duration": duration, "train_window": [train_start, saved], "points": points}


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("verb", choices=["cache", "distill"])
    parser.add_argument("work", type=Path)
    parser.add_argument("--task", required=True)
    parser.add_argument("--zoo", required=True)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    drive = drive_cache if args.verb == "cache" else drive_distill
    started = time.monotonic()
    report = drive(args.work, args.task, args.zoo, args.kills, rng)
    report["seconds"] = time.monotonic() - started
    args.report.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    cli()
