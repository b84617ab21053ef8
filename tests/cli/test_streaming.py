"""End-to-end: a task whose splits are memory-mapped x.npy folders caches and
distills through the CLI exactly like the same task held in memory."""

from __future__ import annotations

import json

import numpy as np
from safetensors.numpy import load_file

from xdistill.data import load_task, save_task

from ..conftest import write_task
from .test_cli import run_cli


def _shards(cache):
    return {p.parent.name + "/" + p.name: load_file(str(p)) for p in sorted((cache / "entries").rglob("shard-*.safetensors"))}


def test_memmap_task_caches_and_distills_like_the_in_memory_task(tmp_path, tiny_zoo):
    npz_task = write_task(tmp_path / "npz")
    save_task(load_task(npz_task), tmp_path / "npy", layout="npy")
    outputs = {}
    for form, task in (("npz", npz_task), ("npy", tmp_path / "npy")):
        cache = tmp_path / f"cache-{form}"
        assert run_cli("cache", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(cache)) == 0
        out = tmp_path / f"run-{form}"
        assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(cache), "--out", str(out),
                       "--epochs", "1", "progress=false", "batch_size=4") == 0
        outputs[form] = (_shards(cache), load_file(str(out / "student.safetensors")),
                         json.loads((out / "metrics.json").read_text()))
    (shards_npz, student_npz, metrics_npz), (shards_npy, student_npy, metrics_npy) = outputs["npz"], outputs["npy"]
    # Same fingerprints, so the same entry keys; same input rows in the same batches, so the same numbers.
    # Stated tolerance: float32 rounding of one forward pass (rtol 1e-6); in practice they are bitwise equal.
    assert shards_npz.keys() == shards_npy.keys() and shards_npz
    for key in shards_npz:
        for name in shards_npz[key]:
            np.testing.assert_allclose(shards_npy[key][name], shards_npz[key][name], rtol=1e-6, atol=0)
    assert student_npz.keys() == student_npy.keys()
    for name in student_npz:  # one epoch of the same steps on the same batches: the same weights
        np.testing.assert_allclose(student_npy[name], student_npz[name], rtol=1e-5, atol=1e-7)
    assert metrics_npy["test"]["accuracy"] == metrics_npz["test"]["accuracy"]
