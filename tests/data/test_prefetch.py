"""Batches prepared by worker processes: the same items, in order, as without workers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from xdistill.config import worker_problems
from xdistill.data.lazy import ImageFolderArray
from xdistill.data.prefetch import AUTO, auto_workers, can_fork, prefetched, resolve_workers


def _item(i: int) -> dict:
    rng = np.random.default_rng([7, i])  # randomness from the position alone, as every batch producer does
    return {"i": i, "x": rng.normal(size=(3, 4)), "pid": os.getpid()}


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_items_come_in_order_and_equal_to_in_process_production(workers):
    items = list(prefetched(_item, 9, workers))
    assert [it["i"] for it in items] == list(range(9))
    for it in items:
        np.testing.assert_array_equal(it["x"], _item(it["i"])["x"])  # bitwise: the same numpy computation
    made_here = {it["pid"] for it in items} == {os.getpid()}
    assert made_here == (workers == 0 or not can_fork())


def test_no_item_is_made_for_an_empty_range():
    assert list(prefetched(_item, 0, 2)) == []


def test_auto_starts_a_worker_for_image_folders_only(tmp_path):
    folder = ImageFolderArray(tmp_path, ["a.png"], (8, 8))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert auto_workers(np.zeros((3, 8, 8), np.uint8)) == 0
    assert auto_workers(np.zeros((3, 8, 8), np.uint8), folder) == (1 if cores > 1 else 0)
    assert resolve_workers(AUTO, folder) == auto_workers(folder)
    assert resolve_workers(3, folder) == 3 and resolve_workers(0, folder) == 0


def test_worker_setting_is_checked():
    assert worker_problems("loader_workers", -1) == [] and worker_problems("loader_workers", 4) == []
    for bad in (-2, 1.5, True, "2"):
        (problem,) = worker_problems("loader_workers", bad)
        assert "'loader_workers' must be -1" in problem and repr(bad) in problem
