from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import write_zoo
from xdistill.cache import CacheWarning, TeacherCache, cache_task
from xdistill.data import load_task
from xdistill.errors import XDistillError
from xdistill.teachers import load_zoo


class Counting:
    """Wraps a teacher, counting samples run and optionally failing after some batches."""

    def __init__(self, inner, fail_after: int | None = None):
        self.inner, self.fail_after, self.samples, self.batches = inner, fail_after, 0, 0
        self.name, self.labels, self.modality = inner.name, inner.labels, inner.modality

    def setup(self):
        self.inner.setup()

    def fingerprint(self):
        return self.inner.fingerprint()

    def outputs(self, batch):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("simulated interrupt")
        self.batches += 1
        self.samples += len(batch)
        return self.inner.outputs(batch)


def _setup(tiny_task, tiny_zoo, tmp_path, **kw):
    task = load_task(tiny_task)
    teachers = [Counting(t) for t in load_zoo(tiny_zoo).teachers()]
    cache = TeacherCache(tmp_path / "cache", batch_size=4, shard_size=8, progress=False, **kw)
    return task, teachers, cache


def test_outputs_match_direct_forward_and_second_run_runs_nothing(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache = _setup(tiny_task, tiny_zoo, tmp_path)
    summary = cache_task(task, teachers, cache)
    total = sum(len(s) for s in task.splits.values())
    assert summary.queries == {"t0": total, "t1": total}
    for t in teachers:
        direct = t.inner.outputs(task.unlabeled.x)
        cached = cache.load(t, task.unlabeled)
        np.testing.assert_allclose(cached.features, direct.features.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(cached.logits, direct.logits.numpy(), rtol=1e-6, atol=1e-6)
    fresh = [Counting(t) for t in load_zoo(tiny_zoo).teachers()]
    again = cache_task(task, fresh, cache)
    assert again.queries == {} and all(t.samples == 0 for t in fresh)
    assert again.reused == {"t0": total, "t1": total}


def test_interrupted_run_resumes_where_it_stopped(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache = _setup(tiny_task, tiny_zoo, tmp_path)
    teachers[0].fail_after = 5  # dies inside its second shard of the first split
    with pytest.raises(KeyboardInterrupt):
        cache_task(task, teachers, cache)
    done_before = teachers[0].samples
    fresh = [Counting(t) for t in load_zoo(tiny_zoo).teachers()]
    summary = cache_task(task, fresh, cache)
    total = sum(len(s) for s in task.splits.values())
    assert 0 < summary.reused.get("t0", 0) <= done_before
    assert summary.queries["t0"] == total - summary.reused["t0"]
    reference = TeacherCache(tmp_path / "ref", batch_size=4, shard_size=8, progress=False)
    cache_task(task, load_zoo(tiny_zoo).teachers(), reference)
    for t in load_zoo(tiny_zoo).teachers():
        for split in task.splits.values():
            a, b = cache.load(t, split), reference.load(t, split)
            # Bitwise: one process runs the same teacher on the same batches (shards align with batches).
            np.testing.assert_array_equal(a.features, b.features)
            np.testing.assert_array_equal(a.logits, b.logits)


def test_corrupt_shard_is_detected_and_recomputed(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache = _setup(tiny_task, tiny_zoo, tmp_path)
    cache_task(task, teachers, cache)
    good = cache.load(teachers[0], task.unlabeled)
    key = cache.key(teachers[0], task.unlabeled)
    shard = cache.store.shard_path(key, 1)
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the tensor bytes
    shard.write_bytes(bytes(data))
    assert cache.lookup(teachers[0], task.unlabeled) is None  # never silently used
    fresh = [Counting(t) for t in load_zoo(tiny_zoo).teachers()]
    with pytest.warns(CacheWarning, match="checksum"):
        summary = cache_task(task, fresh, cache)
    assert summary.recomputed_shards == 1 and summary.queries == {"t0": 8}
    np.testing.assert_array_equal(cache.load(fresh[0], task.unlabeled).features, good.features)


def test_truncated_shard_is_recomputed(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache = _setup(tiny_task, tiny_zoo, tmp_path)
    cache_task(task, teachers, cache)
    shard = cache.store.shard_path(cache.key(teachers[1], task.test), 0)
    shard.write_bytes(shard.read_bytes()[:20])
    with pytest.warns(CacheWarning):
        summary = cache_task(task, [Counting(t) for t in load_zoo(tiny_zoo).teachers()], cache)
    assert summary.queries == {"t1": 8}  # only shard 0 (samples 0-7) is recomputed


def test_changing_one_teacher_invalidates_only_its_entries(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache = _setup(tiny_task, tiny_zoo, tmp_path)
    cache_task(task, teachers, cache)
    write_zoo(tiny_zoo.parent, n_teachers=1, seed=99)  # rewrites t0.pt with other weights
    fresh = [Counting(t) for t in load_zoo(tiny_zoo).teachers()]
    summary = cache_task(task, fresh, cache)
    assert set(summary.queries) == {"t0"}
    manifest = cache.store.read_manifest()
    assert manifest["xdistill"] and len(manifest["entries"]) == 3 * 2 + 3


def test_views_are_deterministic_and_differ_from_clean(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache = _setup(tiny_task, tiny_zoo, tmp_path)
    cache_task(task, teachers, cache, views=2)
    clean = cache.load(teachers[0], task.unlabeled, 0)
    v1 = cache.load(teachers[0], task.unlabeled, 1)
    v2 = cache.load(teachers[0], task.unlabeled, 2)
    assert not np.allclose(v1.features, clean.features) and not np.allclose(v1.features, v2.features)
    other = TeacherCache(tmp_path / "other", batch_size=7, shard_size=5, progress=False)
    np.testing.assert_allclose(other.load(teachers[0], task.unlabeled, 1).features, v1.features, atol=1e-6)


def test_modality_mismatch_refused(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache = _setup(tiny_task, tiny_zoo, tmp_path)
    teachers[0].modality = "text"
    with pytest.raises(XDistillError, match="different input than the task"):
        cache_task(task, teachers, cache)


def test_extraction_memory_does_not_hold_the_split(tmp_path):
    """Outputs are written shard by shard: no list of all outputs survives."""
    from torch import nn

    from xdistill.data import task_from_arrays
    from xdistill.teachers import ModuleTeacher

    x = np.zeros((50, 8, 8), np.uint8)
    task = task_from_arrays("m", ["a", "b"], (x[:4], [0, 1, 0, 1]), x, (x[:4], [0, 1, 0, 1]))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    seen = []
    teacher = ModuleTeacher("m", net, feature_layer="0")
    cache = TeacherCache(tmp_path / "c", batch_size=5, shard_size=10, progress=False)
    original = cache.store.write_shard
    def spy(key, index, start, stop, arrays):
        seen.append(stop - start)
        return original(key, index, start, stop, arrays)
    cache.store.write_shard = spy
    cache_task(task, [teacher], cache, splits=["unlabeled"])
    assert seen == [10] * 5
    torch.testing.assert_close(torch.from_numpy(cache.load(teacher, task.unlabeled).logits), net(torch.zeros(50, 1, 8, 8)))


class Named:
    """The smallest teacher the cache keys on: a name and a fingerprint."""

    def __init__(self, name: str):
        self.name = name

    def fingerprint(self) -> str:
        return f"fingerprint-of-{self.name}"


def test_key_follows_the_teacher_even_when_a_dead_teachers_id_is_reused(tiny_task, tmp_path):
    from xdistill.cache.store import entry_key

    split = load_task(tiny_task).unlabeled
    cache = TeacherCache(tmp_path / "cache", progress=False)
    reused = 0
    for i in range(50):
        old = Named(f"old-{i}")
        cache.key(old, split)
        old_id = id(old)
        del old
        new = Named(f"new-{i}")
        reused += id(new) == old_id  # CPython usually hands the freed memory to the next object
        assert cache.key(new, split) == entry_key(f"fingerprint-of-new-{i}", split.fingerprint, 0, 0)
    assert reused > 0, "no id was reused, so this run did not exercise the case"


def test_named_outputs_keep_their_shapes_and_dtypes(tmp_path):
    """A teacher may return any record of named tensors; each is cached as it is (float64 as float32)."""
    import torch

    from xdistill.data import task_from_arrays
    from xdistill.teachers.base import TeacherOutput

    class Record:
        name, labels, modality = "record", None, "features"

        def setup(self):
            pass

        def fingerprint(self):
            return "record-v1"

        def outputs(self, batch):
            x = torch.as_tensor(batch)
            return TeacherOutput(features=x.double(), logprobs=x[:, :2].half(), offsets=torch.arange(len(x)),
                                 topk=x.long().reshape(len(x), 2, 2))

    rng = np.random.default_rng(0)
    task = task_from_arrays("named", ["a", "b"], (rng.random((6, 4)), np.arange(6) % 2), rng.random((5, 4)),
                            (rng.random((3, 4)), np.arange(3) % 2))
    cache = TeacherCache(tmp_path / "cache", progress=False)
    cache_task(task, [Record()], cache)
    arrays = cache.load(Record(), task.unlabeled).arrays
    assert {k: (v.dtype, v.shape) for k, v in arrays.items()} == {
        "features": (np.float32, (5, 4)), "logprobs": (np.float16, (5, 2)), "offsets": (np.int64, (5,)),
        "topk": (np.int64, (5, 2, 2))}
    np.testing.assert_array_equal(arrays["offsets"], np.arange(5))
    # float64 -> float32 rounds once; float16 holds the rounded values exactly as the teacher gave them
    np.testing.assert_allclose(arrays["features"], task.unlabeled.x, rtol=1e-6)
