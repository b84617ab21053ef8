"""Teacher targets of a pool read on demand live in temporary files, with the same numbers as in memory."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from xdistill.cache.extract import TeacherCache
from xdistill.data import load_task, save_task
from xdistill.kinds.classification import targets as targets_module
from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.prepare import prepare_teachers
from xdistill.kinds.classification.targets import build_targets
from xdistill.teachers.zoo import load_zoo
from xdistill.train.config import DistillConfig

from ...conftest import write_task


def _targets(task_dir: Path, zoo: Path, cache: Path, views: int = 1):
    task = load_task(task_dir)
    teachers = load_zoo(zoo).teachers("cpu")
    config = DistillConfig(views=views)
    prepared = prepare_teachers(task, teachers, TeacherCache(cache, progress=False), config.selection, views=views)
    return build_targets(task, prepared, "weighted", METHODS.get("weighted"), config)


def test_pool_targets_on_disk_equal_the_in_memory_ones_and_go_away(tmp_path, tiny_zoo, monkeypatch):
    monkeypatch.setattr(targets_module, "COMBINE_ROWS", 7)  # several blocks and a partial last one
    npz = write_task(tmp_path / "npz", n_unl=40)
    save_task(load_task(npz), tmp_path / "npy", layout="npy")
    in_memory = _targets(npz, tiny_zoo, tmp_path / "cache")
    on_disk = _targets(tmp_path / "npy", tiny_zoo, tmp_path / "cache")
    assert in_memory.scratch is None and on_disk.scratch is not None
    for key in ("unlabeled", "unlabeled@1"):
        assert isinstance(on_disk.per_teacher[key], np.memmap) and isinstance(on_disk.combined[key], np.memmap)
    assert not isinstance(on_disk.combined["labeled"], np.memmap)
    # The same float32 computations on the same rows: bitwise equal.
    for key in in_memory.combined:
        np.testing.assert_array_equal(on_disk.per_teacher[key], in_memory.per_teacher[key])
        np.testing.assert_array_equal(on_disk.combined[key], in_memory.combined[key])
    index, views = np.array([3, 0, 39, 3]), np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(on_disk.unlabeled(views, index), in_memory.unlabeled(views, index))
    scratch = on_disk.scratch.path
    assert sorted(p.name for p in scratch.iterdir()) == ["unlabeled-2d.npy", "unlabeled-3d.npy",
                                                         "unlabeled-view1-2d.npy", "unlabeled-view1-3d.npy"]
    del on_disk
    gc.collect()
    assert not scratch.exists()
