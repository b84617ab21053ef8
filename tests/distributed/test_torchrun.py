"""Scale-out under torchrun (gloo on CPU): sharded caching and DDP distillation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from safetensors.numpy import load_file

from tests.conftest import write_zoo
from xdistill.data import save_task, task_from_arrays

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + str(Path(SRC).parent), "OMP_NUM_THREADS": "1"}


def easy_task(folder: Path, n_lab: int = 24, n_unl: int = 96, n_test: int = 60) -> Path:
    """3 classes told apart by which third of an 8x8 image is bright: any student learns it."""
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 3
        x = rng.integers(0, 60, size=(n, 8, 8)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, :, c * 3:c * 3 + 2] = 230
        return x, y

    lab, unl, test = make(n_lab), make(n_unl)[0], make(n_test)
    save_task(task_from_arrays("easy", ["a", "b", "c"], lab, unl, test), folder)
    return folder


def xdistill(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xdistill", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def cache_contents(root: Path) -> dict[tuple[str, str, int], dict[str, np.ndarray]]:
    manifest = json.loads((root / "manifest.json").read_text())
    out = {}
    for key, entry in manifest["entries"].items():
        shards = sorted((root / "entries" / key).glob("shard-*.safetensors"))
        parts = [load_file(str(s)) for s in shards]
        out[(entry["teacher"], entry["split"], entry["view"])] = {
            name: np.concatenate([p[name] for p in parts]) for name in parts[0]
        }
    return out


def test_two_process_cache_equals_one_process(tmp_path):
    task = easy_task(tmp_path / "task")
    zoo = write_zoo(tmp_path / "zoo")
    one = xdistill("cache", "--task", str(task), "--zoo", str(zoo), "--cache", str(tmp_path / "c1"), "shard_size=16", "views=1")
    assert one.returncode == 0, one.stderr
    two = xdistill("cache", "--task", str(task), "--zoo", str(zoo), "--cache", str(tmp_path / "c2"), "shard_size=16",
                   "views=1", "--nproc", "2")
    assert two.returncode == 0, two.stderr
    a, b = cache_contents(tmp_path / "c1"), cache_contents(tmp_path / "c2")
    assert set(a) == set(b) and len(a) == 2 * 4
    for key in a:
        for name in a[key]:
            np.testing.assert_allclose(a[key][name], b[key][name], rtol=1e-6, atol=1e-6, err_msg=str(key))
    # the manifest was written once, by rank 0, and lists every entry
    assert len(json.loads((tmp_path / "c2" / "manifest.json").read_text())["entries"]) == 8


def test_two_process_distill_matches_one_process(tmp_path):
    task = easy_task(tmp_path / "task")
    zoo = write_zoo(tmp_path / "zoo")
    common = ["--task", str(task), "--zoo", str(zoo), "--cache", str(tmp_path / "c"), "--method", "weighted",
              "--epochs", "6", "progress=false", "batch_size=4", "student.name=mlp"]
    one = xdistill("distill", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = xdistill("distill", *common, "--out", str(tmp_path / "two"), "--nproc", "2")
    assert two.returncode == 0, two.stderr
    acc1 = json.loads((tmp_path / "one" / "metrics.json").read_text())["test"]["accuracy"]
    acc2 = json.loads((tmp_path / "two" / "metrics.json").read_text())["test"]["accuracy"]
    assert acc1 >= 0.9 and abs(acc1 - acc2) <= 0.01, (acc1, acc2)
    # only rank 0 wrote outputs
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in (tmp_path / "one").iterdir() if not p.name.startswith("."))


def test_killed_rank_stops_job_clearly_and_resume_completes(tmp_path):
    task = easy_task(tmp_path / "task", n_unl=400)
    zoo = write_zoo(tmp_path / "zoo")
    out = tmp_path / "run"
    args = ["distill", "--task", str(task), "--zoo", str(zoo), "--cache", str(tmp_path / "c"), "--method", "weighted",
            "--epochs", "40", "progress=false", "batch_size=4", "student.name=mlp", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "xdistill", *args, "--nproc", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 300
    while not (out / "checkpoint.safetensors").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.2)
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
               if "xdistill" in " ".join(p.cmdline()) and "torch.distributed.run" not in " ".join(p.cmdline())]
    assert len(workers) >= 2
    workers[-1].kill()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert "2-process 'distill' run failed" in stderr and "--resume" in stderr
    resumed = xdistill(*args, "--resume", timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["curves"]] == list(range(1, 41))
