"""Reading cache entries without holding them whole: load_rows and iter_shards."""

from __future__ import annotations

import numpy as np

from xdistill.cache.extract import TeacherCache, cache_task
from xdistill.data import load_task, save_task
from xdistill.teachers.base import create_teacher
from xdistill.teachers.zoo import load_zoo

from ..conftest import write_task


def test_load_rows_and_iter_shards_match_the_whole_entry(tmp_path, tiny_zoo):
    task = load_task(write_task(tmp_path / "task"))
    teachers = [create_teacher(spec) for spec in load_zoo(tiny_zoo).specs]
    cache = TeacherCache(tmp_path / "cache", shard_size=7, progress=False)  # 30 samples: 5 shards, the last partial
    cache_task(task, teachers, cache)
    whole = cache.load(teachers[0], task.unlabeled)
    index = np.array([29, 3, 3, 14, 0, 21])  # unsorted, repeated, first and last
    rows = cache.load_rows(teachers[0], task.unlabeled, index)
    for name, array in whole.arrays.items():
        np.testing.assert_array_equal(rows.arrays[name], array[index])  # copies of stored values: exact
    shards = list(cache.iter_shards(teachers[0], task.unlabeled))
    assert [(start, stop) for start, stop, _ in shards] == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 30)]
    np.testing.assert_array_equal(np.concatenate([a["logits"] for _, _, a in shards]), whole.logits)


def test_memory_mapped_task_shares_cache_entries_with_the_npz_form(tmp_path, tiny_zoo):
    in_memory = load_task(write_task(tmp_path / "npz"))
    save_task(in_memory, tmp_path / "npy", layout="npy")
    mapped = load_task(tmp_path / "npy")
    teachers = [create_teacher(spec) for spec in load_zoo(tiny_zoo).specs]
    cache = TeacherCache(tmp_path / "cache", progress=False)
    first = cache_task(in_memory, teachers, cache)
    second = cache_task(mapped, teachers, cache)
    assert sum(first.queries.values()) > 0 and second.queries == {}
