"""Targets whose unlabeled pool holds classes outside the label set
(``xdistill bench --suite mismatch``).

A pool crawled for a task rarely holds only the task's classes. These two
targets are built from scikit-learn's digits (the ``sk-digits`` demo target's
images) with the label set 0..5:

* ``sk-digits-mismatch``: an unlabeled pool of ``POOL_SIZE`` images, 60 % of
  them digits 6..9, which no labeled or test image shows;
* ``sk-digits-mismatch-clean``: its twin, the same labels, test split and
  pool size, with digits 0..5 only.

Both have 10 labels a class and a test split of digits 0..5. The mismatched
pool's task folder holds :data:`OUTSIDE_MASK_FILE` beside it, marking which
pool images are outside the label set; it is an annotation for reports and
the bench (the weights teacher methods gave to each side), never read by
training.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xdistill.data import Task, save_task, task_from_arrays
from xdistill.demo import domains
from xdistill.demo.world import DemoWorld
from xdistill.io import atomic_write_bytes
from xdistill.kinds.classification.pool import OUTSIDE_MASK_FILE

MISMATCH_FOLDER = "mismatch"
KNOWN = 6  # the label set is digits 0..KNOWN-1; digits KNOWN..9 appear only in the mismatched pool
POOL_SIZE = 700  # unlabeled images of both targets
OUTSIDE_SHARE = 0.6  # share of the mismatched pool outside the label set
TEST_PER_CLASS = 50


def mismatch_tasks(labeled_per_class: int = 10, seed: int = 0) -> tuple[Task, Task, np.ndarray]:
    """(the mismatched target, its clean twin, the mismatched pool's outside-the-label-set mask [POOL_SIZE])."""
    images, digits = domains.load_sklearn_digits()
    x = domains.to_uint8(domains.resize(images / 16.0, 28, "bilinear"))
    rng = np.random.default_rng([seed, 6])
    labeled, test, known_pool = [], [], []
    for c in range(KNOWN):
        members = rng.permutation(np.flatnonzero(digits == c))
        labeled.append(members[:labeled_per_class])
        test.append(members[labeled_per_class:labeled_per_class + TEST_PER_CLASS])
        known_pool.append(members[labeled_per_class + TEST_PER_CLASS:])
    labeled, test = rng.permutation(np.concatenate(labeled)), rng.permutation(np.concatenate(test))
    known_pool = rng.permutation(np.concatenate(known_pool))
    outside_pool = rng.permutation(np.flatnonzero(digits >= KNOWN))
    n_outside = round(OUTSIDE_SHARE * POOL_SIZE)
    if len(known_pool) < POOL_SIZE or len(outside_pool) < n_outside:
        raise ValueError("scikit-learn's digits hold too few images for the mismatch targets' pool size")
    mixed = np.concatenate([known_pool[:POOL_SIZE - n_outside], outside_pool[:n_outside]])
    order = rng.permutation(POOL_SIZE)
    mixed = mixed[order]
    outside = digits[mixed] >= KNOWN
    classes = [str(c) for c in range(KNOWN)]

    def task(name: str, pool: np.ndarray, what: str) -> Task:
        return task_from_arrays(name, classes, (x[labeled], digits[labeled]), x[pool], (x[test], digits[test]),
                                "image", f"scikit-learn digits 0..{KNOWN - 1} upsampled to 28x28; {what}")

    mismatched = task("sk-digits-mismatch", mixed,
                      f"{OUTSIDE_SHARE:.0%} of the unlabeled pool are digits {KNOWN}..9 (outside the label set)")
    clean = task("sk-digits-mismatch-clean", known_pool[:POOL_SIZE], "the unlabeled pool holds digits of the label "
                 "set only")
    return mismatched, clean, outside


def build_mismatch(world: DemoWorld, log: Callable[[str], None] = print) -> dict[str, tuple[Path, Path]]:
    """Each mismatch target's (task folder, zoo file), built under ``world.root / MISMATCH_FOLDER`` when missing."""
    root = world.root / MISMATCH_FOLDER / "tasks"
    folders = {name: root / name for name in ("sk-digits-mismatch", "sk-digits-mismatch-clean")}
    if not all((folder / "task.yaml").is_file() for folder in folders.values()):
        mismatched, clean, outside = mismatch_tasks()
        for task, folder in ((mismatched, folders["sk-digits-mismatch"]), (clean, folders["sk-digits-mismatch-clean"])):
            if task is mismatched:
                buffer = io.BytesIO()
                np.save(buffer, outside, allow_pickle=False)
                atomic_write_bytes(folder / OUTSIDE_MASK_FILE, buffer.getvalue())
            # task.yaml is written last, so a folder holding it is complete.
            save_task(dataclasses.replace(task, root=None), folder)
            log(f"mismatch targets: task {task.name}: " + ", ".join(f"{len(s)} {k}" for k, s in task.splits.items()))
    return {name: (folder, world.zoo_path) for name, folder in folders.items()}
