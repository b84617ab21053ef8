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


def _image_folder_task(root, seed=0):
    """A 3-class task whose splits are folders of PNG files (read as ImageFolderArray)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("labeled", 9), ("unlabeled", 24), ("test", 6)):
        for i in range(n):
            folder = root / split / (f"c{i % 3}" if split != "unlabeled" else "")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    (root / "task.yaml").write_text(json.dumps({
        "name": "png-task", "classes": ["c0", "c1", "c2"], "input": "image",
        "splits": {"labeled": "labeled", "unlabeled": "unlabeled", "test": "test"}}))
    return root


def test_worker_processes_change_nothing_but_who_reads_the_images(tmp_path, tiny_zoo):
    """Caching and training with a worker decoding the next batches (loader_workers=1) give the same shards
    and the same student as reading them in the training process (loader_workers=0)."""
    task = _image_folder_task(tmp_path / "task")
    outputs = {}
    for workers in (0, 1):
        cache, out = tmp_path / f"cache-{workers}", tmp_path / f"run-{workers}"
        assert run_cli("cache", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(cache),
                       f"loader_workers={workers}", "batch_size=5") == 0
        assert run_cli("distill", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(cache), "--out", str(out),
                       "--epochs", "2", "progress=false", "batch_size=3", f"loader_workers={workers}") == 0
        outputs[workers] = (_shards(cache), load_file(str(out / "student.safetensors")))
    (shards_0, student_0), (shards_1, student_1) = outputs[0], outputs[1]
    assert shards_0.keys() == shards_1.keys() and shards_0
    for key in shards_0:
        for name in shards_0[key]:  # the same decoded pixels through the same teacher: bitwise equal
            np.testing.assert_array_equal(shards_1[key][name], shards_0[key][name])
    for name in student_0:  # the same batches in the same order: the same weights (float32 ops, rtol 1e-6)
        np.testing.assert_allclose(student_1[name], student_0[name], rtol=1e-6, atol=1e-7)


def test_a_bad_worker_count_is_a_one_line_error(tmp_path, tiny_zoo, capsys):
    task = write_task(tmp_path / "task")
    assert run_cli("cache", "--task", str(task), "--zoo", str(tiny_zoo), "--cache", str(tmp_path / "c"),
                   "loader_workers=-3") == 2
    assert "'loader_workers' must be -1" in capsys.readouterr().err
