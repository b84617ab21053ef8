"""Crash safety: ``xdistill cache`` and ``xdistill distill`` killed with SIGKILL at
seeded random moments resume to the same cache and the same student as an
uninterrupted run, and never leave (or read) a half-written file.

The many kills run in ``crash_driver.py`` (one process that forks each run, so
no kill pays Python's start-up); one more test kills real ``python -m xdistill``
processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_task, write_zoo
from tests.reliability.env import ENV, REPO
from tests.reliability.files import cache_differences, student_differences, unreadable_files

KILLS = 20


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("crash")
    return write_task(root / "task", n_lab=6), write_zoo(root / "zoo")


def run_driver(verb: str, world, work: Path, seed: int) -> dict:
    task, zoo = world
    report = work.parent / f"{verb}-report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.crash_driver", verb, str(work), "--task", str(task), "--zoo", str(zoo),
         "--kills", str(KILLS), "--seed", str(seed), "--report", str(report)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(report.read_text())
    killed = [p for p in result["points"] if p["killed"]]
    print(f"{verb}: {len(killed)} SIGKILLs over a {result['duration']:.2f}s run, all resumed, in {result['seconds']:.0f}s")
    return result


def check_point(point: dict) -> None:
    where = f"killed at {point['at']}s"
    assert point["unreadable_after_kill"] == [], (where, point["unreadable_after_kill"])
    assert point["resume_code"] == 0, (where, point.get("log"))
    assert point["unreadable_after_resume"] == [], (where, point["unreadable_after_resume"])
    assert point["differences"] == [], (where, point["differences"])


def test_cache_killed_anywhere_resumes_to_identical_cache(world, tmp_path):
    result = run_driver("cache", world, tmp_path / "work", seed=11)
    killed = [p for p in result["points"] if p["killed"]]
    assert len(killed) >= KILLS
    for point in result["points"]:
        check_point(point)
        assert point["recomputed_shards"] == 0, point  # the resumed run met no damaged shard
        assert point["accounted"], point  # every sample was either reused or queried, once
    # The kills landed in every phase: before any shard, between shards of an entry, between entries.
    states = [(p["state"]["shards"], p["state"]["entries"]) for p in killed]
    assert any(s == 0 for s, _ in states) and any(s > 0 and e < 6 for s, e in states), states
    assert any(p["reused"] and p["queries"] for p in killed), "no kill left a partly filled cache"


def test_distill_killed_anywhere_resumes_to_identical_student(world, tmp_path):
    result = run_driver("distill", world, tmp_path / "work", seed=12)
    killed = [p for p in result["points"] if p["killed"]]
    assert len(killed) >= KILLS
    for point in result["points"]:
        check_point(point)
    epochs = [p["checkpoint_epoch"] for p in killed]
    assert None in epochs, "no kill before the first checkpoint (fresh-run path untested)"
    assert any(e is not None and e < 4 for e in epochs), f"no kill mid-training: {epochs}"


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xdistill", *args], cwd=REPO, env=ENV,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _kill_when(proc: subprocess.Popen, folder: Path, pattern: str, timeout: float = 180) -> None:
    """SIGKILL ``proc`` as soon as a file matching ``pattern`` appears under ``folder``."""
    deadline = time.monotonic() + timeout
    while not (folder.exists() and any(folder.glob(pattern))):
        assert proc.poll() is None, f"the run ended before {pattern} appeared"
        assert time.monotonic() < deadline, f"{pattern} never appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_real_cli_processes_killed_then_resumed(world, tmp_path):
    """Fresh ``python -m xdistill distill`` interpreters: one killed while it fills the cache,
    one killed right after its first checkpoint, then ``--resume``; all end as one uninterrupted run."""
    from xdistill.cli.main import main

    task, zoo = world
    args = ["distill", "--task", str(task), "--zoo", str(zoo), "--method", "weighted", "--epochs", "4",
            "batch_size=4", "progress=false", "threads=1"]
    cache, out, reference = tmp_path / "cache", tmp_path / "run", tmp_path / "reference"
    run = [*args, "--cache", str(cache), "--out", str(out)]

    _kill_when(_start(run, tmp_path / "first.log"), cache, "entries/*/entry.json")
    assert unreadable_files(cache) == [] and not (out / "checkpoint.safetensors").exists()
    _kill_when(_start(run, tmp_path / "second.log"), out, "checkpoint.safetensors")
    assert unreadable_files(out) == [] and unreadable_files(cache) == []
    resumed = subprocess.run([sys.executable, "-m", "xdistill", *run, "--resume"], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from epoch" in resumed.stdout

    try:
        main([*args, "--cache", str(reference / "cache"), "--out", str(reference / "run")])
    except SystemExit as done:
        assert done.code in (0, None)
    assert cache_differences(cache, reference / "cache") == []
    assert student_differences(out, reference / "run") == []
    assert unreadable_files(out) == [] and unreadable_files(cache) == []
