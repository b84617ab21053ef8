"""Concurrency: two processes caching the same task and teachers at the same moment
share the work through the per-entry lock and leave one intact cache."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.reliability.env import ENV, REPO
from tests.reliability.files import cache_differences, unreadable_files

# Each process imports everything, waits for the 'go' file, then runs the CLI: both start within
# a millisecond or two instead of a Python start-up apart.
STARTER = """
import sys, time, pathlib
from xdistill.cli.main import main
import xdistill.cache, xdistill.teachers.module, tests.reliability.slow_teacher
ready, go, started = (pathlib.Path(p) for p in sys.argv[1:4])
ready.touch()
while not go.exists():
    time.sleep(0.0005)
started.write_text(repr(time.time()))
main(sys.argv[4:])
"""


def _zoo(folder: Path, log: Path) -> Path:
    from tests.conftest import write_zoo

    zoo = write_zoo(folder, n_teachers=1)
    entries = yaml.safe_load(zoo.read_text())["teachers"]
    entries.append({"name": "slow", "kind": "module", "factory": "tests.reliability.slow_teacher:build",
                    "kwargs": {"delay": 0.03, "log": str(log)},
                    "input": {"size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.5]},
                    "labels": ["l0", "l1", "l2"]})
    zoo.write_text(yaml.safe_dump({"teachers": entries}, sort_keys=False))
    return zoo


def test_two_processes_caching_at_once_share_the_work(tiny_task, tmp_path):
    from xdistill.cli.main import main

    calls = tmp_path / "calls.log"
    zoo = _zoo(tmp_path / "zoo", calls)
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    common = ["cache", "--task", str(tiny_task), "--zoo", str(zoo), "batch_size=4", "shard_size=8"]
    args = [*common, "--cache", str(cache)]
    procs = []
    for i in (0, 1):
        procs.append(subprocess.Popen(
            [sys.executable, "-c", STARTER, str(tmp_path / f"ready{i}"), str(go), str(tmp_path / f"started{i}"),
             *args, "--json", str(tmp_path / f"summary{i}.json")],
            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 240
    while not all((tmp_path / f"ready{i}").exists() for i in (0, 1)):
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    summaries = [json.loads((tmp_path / f"summary{i}.json").read_text()) for i in (0, 1)]
    print("queries/reused per process:", [(s["queries"], s["reused"]) for s in summaries])

    # Every sample was computed exactly once, by one process or the other, and reused by the other.
    samples = 12 + 30 + 9
    for teacher in ("t0", "slow"):
        assert sum(s["queries"].get(teacher, 0) for s in summaries) == samples, summaries
        assert sum(s["reused"].get(teacher, 0) for s in summaries) == samples, summaries
    assert all(s["recomputed_shards"] == 0 for s in summaries)

    # The runs overlapped: each process started before the other's last teacher call.
    started = [float((tmp_path / f"started{i}").read_text()) for i in (0, 1)]
    last_call = max(float(line.split()[1]) for line in calls.read_text().splitlines())
    assert max(started) < last_call, "the two runs did not overlap; the test proved nothing"

    try:
        main([*common, "--cache", str(tmp_path / "reference")])
    except SystemExit as done:
        assert done.code in (0, None)
    assert unreadable_files(cache) == []
    assert cache_differences(cache, tmp_path / "reference") == []
