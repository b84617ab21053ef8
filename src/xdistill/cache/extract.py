"""Run each teacher once over each split (and view) and keep its outputs.

    cache = TeacherCache("~/.cache/xdistill/cache")
    summary = cache_task(task, teachers, cache)           # runs what is missing
    out = cache.load(teacher, task.unlabeled)              # never runs a teacher

Extraction holds one batch of inputs and one shard of outputs at a time, so
its memory does not grow with the split: a lazy split (a memory-mapped
``x.npy``, an image folder) is read batch by batch, and the pages of a memory
map are released after each shard. A shard that fails its checksum is
recomputed with a warning, never used. :meth:`TeacherCache.load_rows` and
:meth:`TeacherCache.iter_shards` read an entry without holding it whole.
"""

from __future__ import annotations

import contextlib
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xdistill.cache.store import CachedOutputs, CacheStore, CorruptShard, entry_key, now
from xdistill.data.augment import augment
from xdistill.config import worker_problems
from xdistill.data.lazy import release_pages
from xdistill.data.prefetch import AUTO, prefetched, resolve_workers
from xdistill.data.task import Split, Task
from xdistill.data.tensors import images_to_tensor
from xdistill.errors import XDistillError
from xdistill.progress import ProgressBar, progress_bar
from xdistill.runtime import Runtime
from xdistill.teachers.base import Teacher
from xdistill.teachers.zoo import check_modalities


class CacheWarning(UserWarning):
    """A cache entry was damaged or stale and is being recomputed."""


@dataclass
class CacheSummary:
    """What one caching run did."""

    queries: dict[str, int] = field(default_factory=dict)  # teacher -> samples it was run on
    reused: dict[str, int] = field(default_factory=dict)  # teacher -> samples found in the cache
    recomputed_shards: int = 0  # shards found damaged or stale and recomputed
    seconds: float = 0.0
    # teacher -> seconds spent producing its outputs (reading inputs and running it), without loading it,
    # checking the cache or writing shards: queries / compute_seconds is the extraction's own throughput
    compute_seconds: dict[str, float] = field(default_factory=dict)
    entries: dict[str, dict] = field(default_factory=dict)

    @property
    def teachers_run(self) -> list[str]:
        return sorted(name for name, n in self.queries.items() if n > 0)


def _as_numpy(tensor) -> np.ndarray:
    """A teacher's output tensor as numpy; bfloat16, which numpy lacks, becomes float32."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def _stored(array: np.ndarray) -> np.ndarray:
    """Each output keeps its own dtype (float16 log-probabilities, int64 token ids, ...), except that
    float64 is stored as float32, the precision every consumer computes teacher outputs in."""
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _ranges(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


class TeacherCache:
    """Teacher outputs keyed by teacher fingerprint x split fingerprint x view."""

    def __init__(self, root: str | Path, batch_size: int = 256, shard_size: int = 4096, augment_seed: int = 0,
                 progress: bool = True, loader_workers: int = AUTO) -> None:
        if batch_size < 1 or shard_size < 1:
            raise XDistillError(f"batch_size and shard_size must be >= 1. Got {batch_size} and {shard_size}.")
        if worker_problems("loader_workers", loader_workers):
            raise XDistillError(worker_problems("loader_workers", loader_workers)[0])
        # processes reading (decoding, augmenting) the next input batches while a teacher runs; AUTO = one
        # for an image-folder split, none for arrays and memory maps (see xdistill.data.prefetch)
        self.loader_workers = loader_workers
        self.store = CacheStore(root)
        self.root = self.store.root
        self.batch_size = batch_size
        self.shard_size = shard_size
        self.augment_seed = augment_seed
        self.progress = progress
        # id(teacher) -> (a weak reference to the teacher, its fingerprint). Ids are reused once an
        # object is garbage-collected, so a hit counts only while the reference still points at it.
        self._fingerprints: dict[int, tuple[Callable[[], Teacher | None], str]] = {}

    def fingerprint(self, teacher: Teacher) -> str:
        known = self._fingerprints.get(id(teacher))
        if known is None or known[0]() is not teacher:
            try:
                ref = weakref.ref(teacher)
            except TypeError:  # no weak references (__slots__): keep the teacher itself
                ref = (lambda kept: lambda: kept)(teacher)
            known = self._fingerprints[id(teacher)] = (ref, teacher.fingerprint())
        return known[1]

    def key(self, teacher: Teacher, split: Split, view: int = 0) -> str:
        return entry_key(self.fingerprint(teacher), split.fingerprint, view, self.augment_seed if view else 0)

    def is_complete(self, teacher: Teacher, split: Split, view: int = 0) -> bool:
        """Whether the entry's record says it is complete (its shards are verified when read)."""
        info = self.store.read_entry_info(self.key(teacher, split, view))
        return info is not None and info.get("n") == len(split)

    def _inputs(self, split: Split, start: int, stop: int, view: int):
        raw = split.x[start:stop]
        if view == 0:
            return raw
        if split.x.dtype == object or split.x.ndim not in (3, 4):
            raise XDistillError(f"Augmented views are only defined for image tasks; split '{split.name}' holds {split.x.dtype} data.")
        return augment(images_to_tensor(raw), "weak", self.augment_seed, view, np.arange(start, stop), len(split))

    def _compute_shard(self, teacher: Teacher, split: Split, view: int, start: int, stop: int,
                       bar: ProgressBar | None) -> dict[str, np.ndarray]:
        teacher.setup()
        parts: dict[str, list[np.ndarray]] = {}
        bounds = [(b0, min(b0 + self.batch_size, stop)) for b0 in range(start, stop, self.batch_size)]
        workers = resolve_workers(self.loader_workers, split.x)
        for (b0, b1), inputs in zip(bounds, prefetched(lambda i: self._inputs(split, *bounds[i], view), len(bounds),
                                                         workers)):
            out = teacher.outputs(inputs)
            for name, tensor in out.tensors.items():
                parts.setdefault(name, []).append(_as_numpy(tensor))
            if bar is not None:
                bar.update(b1 - b0)
        release_pages(split.x)
        return {name: np.ascontiguousarray(_stored(np.concatenate(arrays))) for name, arrays in parts.items()}

    def ensure(self, teacher: Teacher, split: Split, view: int = 0, summary: CacheSummary | None = None,
               bar: ProgressBar | None = None, runtime: Runtime | None = None) -> str:
        """Make sure the entry exists and is intact, computing only what is missing; returns its key.

        With ``runtime.world_size > 1`` this process computes shards ``rank, rank + world_size, ...``
        and rank 0 finishes the entry once every rank is done (see :func:`cache_task`).
        """
        summary = summary if summary is not None else CacheSummary()
        rank, world_size = (runtime.rank, runtime.world_size) if runtime is not None else (0, 1)
        key = self.key(teacher, split, view)
        n = len(split)
        if world_size == 1 and self._reuse_complete(teacher, key, n, summary, bar):
            return key
        # Ranks of one torchrun job own disjoint shards, so only separate jobs need the entry lock.
        guard = self.store.lock(key) if world_size == 1 else contextlib.nullcontext(self.store.entry_dir(key).mkdir(parents=True, exist_ok=True))
        with guard:
            info = self.store.read_entry_info(key)
            shard_size = int(info["shard_size"]) if info and info.get("n") == n else self.shard_size
            ranges = _ranges(n, shard_size)
            dims: dict[str, list[int]] = {}
            for index, (start, stop) in enumerate(ranges):
                if index % world_size != rank:
                    continue
                try:
                    arrays = self.store.read_shard(key, index, start, stop)
                    summary.reused[teacher.name] = summary.reused.get(teacher.name, 0) + (stop - start)
                    if bar is not None:
                        bar.update(stop - start)
                except FileNotFoundError:
                    arrays = self._compute_and_write(teacher, split, view, key, index, start, stop, summary, bar)
                except CorruptShard as exc:
                    warnings.warn(
                        f"Cache shard {index} of teacher '{teacher.name}' on split '{split.name}' (view {view}) is "
                        f"{exc}; recomputing it.", CacheWarning, stacklevel=2,
                    )
                    summary.recomputed_shards += 1
                    self.store.drop_entry_info(key)
                    info = None
                    arrays = self._compute_and_write(teacher, split, view, key, index, start, stop, summary, bar)
                dims = {name: list(a.shape[1:]) for name, a in arrays.items()}
                del arrays
            if world_size == 1 and info is None:
                record = {
                    "teacher": teacher.name, "teacher_fingerprint": self.fingerprint(teacher),
                    "split": split.name, "split_fingerprint": split.fingerprint, "view": view,
                    "augment_seed": self.augment_seed if view else 0, "n": n, "shard_size": shard_size,
                    "shards": len(ranges), "dims": dims, "created": now(),
                }
                self.store.write_entry_info(key, record)
                summary.entries[key] = record
            elif world_size == 1:
                # Also index entries found complete: a run killed after writing entry.json but before
                # its manifest update would otherwise leave them out of the manifest for good.
                summary.entries[key] = {k: v for k, v in info.items() if k not in ("format", "xdistill")}
        return key

    def _reuse_complete(self, teacher: Teacher, key: str, n: int, summary: CacheSummary,
                        bar: ProgressBar | None) -> bool:
        """Whether the entry is complete and every shard verifies, read without the entry lock.

        Writers replace shards and ``entry.json`` atomically and every shard carries its checksum,
        so an unlocked read sees whole, verified files or gives up; a complete entry is then used
        as it is, which also works in a cache folder the user may only read (a shared team cache).
        """
        info = self._read_complete(key, n, keep=None)
        if info is None:
            return False  # the locked pass reports and repairs what is wrong
        summary.reused[teacher.name] = summary.reused.get(teacher.name, 0) + n
        summary.entries[key] = {k: v for k, v in info.items() if k not in ("format", "xdistill")}
        if bar is not None:
            bar.update(n)
        return True

    def _read_complete(self, key: str, n: int, keep: dict[str, list[np.ndarray]] | None) -> dict | None:
        """The entry's record if it is complete and every shard verifies, else None; the shards'
        arrays are appended to ``keep`` (by name) when given, or dropped one shard at a time."""
        info = self.store.read_entry_info(key)
        if info is None or info.get("n") != n:
            return None
        try:
            for index, (start, stop) in enumerate(_ranges(n, int(info["shard_size"]))):
                arrays = self.store.read_shard(key, index, start, stop)
                if keep is not None:
                    for name, arr in arrays.items():
                        keep.setdefault(name, []).append(arr)
        except (FileNotFoundError, CorruptShard, KeyError, ValueError):
            return None
        return info

    def _compute_and_write(self, teacher, split, view, key, index, start, stop, summary, bar):
        teacher.setup()
        started = time.perf_counter()
        arrays = self._compute_shard(teacher, split, view, start, stop, bar)
        summary.compute_seconds[teacher.name] = summary.compute_seconds.get(teacher.name, 0.0) + (
            time.perf_counter() - started)
        if not arrays:
            raise XDistillError(f"Teacher '{teacher.name}' returned no outputs (neither features nor logits).")
        self.store.write_shard(key, index, start, stop, arrays)
        summary.queries[teacher.name] = summary.queries.get(teacher.name, 0) + (stop - start)
        return arrays

    def lookup(self, teacher: Teacher, split: Split, view: int = 0) -> CachedOutputs | None:
        """The cached outputs if the entry is complete and intact; never runs the teacher."""
        key = self.key(teacher, split, view)
        parts: dict[str, list[np.ndarray]] = {}
        if self._read_complete(key, len(split), keep=parts) is None:
            return None
        joined = {name: np.concatenate(arrs) if len(arrs) > 1 else arrs[0] for name, arrs in parts.items()}
        return CachedOutputs(key, joined)

    def iter_shards(self, teacher: Teacher, split: Split, view: int = 0) -> Iterable[tuple[int, int, dict[str, np.ndarray]]]:
        """``(start, stop, arrays)`` of each verified shard of a complete entry, one shard in memory at a
        time, computing the entry first when it is missing."""
        key = self.key(teacher, split, view)
        info = self.store.read_entry_info(key)
        if info is None or info.get("n") != len(split):
            self.ensure(teacher, split, view)
            info = self.store.read_entry_info(key)
        for index, (start, stop) in enumerate(_ranges(len(split), int(info["shard_size"]))):
            try:
                arrays = self.store.read_shard(key, index, start, stop)
            except (FileNotFoundError, CorruptShard):
                self.ensure(teacher, split, view)
                arrays = self.store.read_shard(key, index, start, stop)
            yield start, stop, arrays

    def load_rows(self, teacher: Teacher, split: Split, index: np.ndarray, view: int = 0) -> CachedOutputs:
        """The teacher's cached outputs on samples ``index`` [M] of a split (in that order), read shard by
        shard: memory grows with M, not with the split."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == len(split) and np.array_equal(index, np.arange(len(split))):
            return self.load(teacher, split, view)
        parts: dict[str, np.ndarray] = {}
        key = self.key(teacher, split, view)
        for start, stop, arrays in self.iter_shards(teacher, split, view):
            inside = np.flatnonzero((index >= start) & (index < stop))
            for name, array in arrays.items():
                if name not in parts:
                    parts[name] = np.empty((len(index), *array.shape[1:]), dtype=array.dtype)
                parts[name][inside] = array[index[inside] - start]
        return CachedOutputs(key, parts)

    def load(self, teacher: Teacher, split: Split, view: int = 0) -> CachedOutputs:
        """The teacher's outputs on a split: from the cache, computing (and caching) what is missing."""
        found = self.lookup(teacher, split, view)
        if found is not None:
            return found
        self.ensure(teacher, split, view)
        found = self.lookup(teacher, split, view)
        if found is None:
            raise XDistillError(f"The cache entry of teacher '{teacher.name}' on split '{split.name}' could not be read back from '{self.root}'.")
        return found


def cache_task(task: Task, teachers: Iterable[Teacher], cache: TeacherCache, views: int = 0,
               splits: Iterable[str] | None = None, runtime: Runtime | Callable[[str], None] | None = None) -> CacheSummary:
    """Cache every teacher's outputs on every split of ``task`` (plus ``views`` augmented
    views of the unlabeled split), computing only what is missing.

    runtime: where to report and, under torchrun, this process's rank (a plain ``log`` function is
    taken as a one-process runtime that logs there).
    """
    runtime = runtime if isinstance(runtime, Runtime) else Runtime(log=runtime)
    rank, world_size, log = runtime.rank, runtime.world_size, runtime.info
    teachers = list(teachers)
    check_modalities(teachers, task.modality)
    if views < 0:
        raise XDistillError(f"'views' must be >= 0. Got {views}.")
    if views and task.modality != "image":
        raise XDistillError(f"Augmented views need an image task; task '{task.name}' has input '{task.modality}'. Use views=0.")
    split_names = list(splits) if splits is not None else list(task.splits)
    jobs = [(t, task.splits[s], 0) for t in teachers for s in split_names]
    jobs += [(t, task.unlabeled, v) for t in teachers for v in range(1, views + 1)]
    total = sum(len(split) for _, split, _ in jobs)
    # Load every teacher that still has work before anything is written: a broken or refused
    # teacher file then stops the run with the cache folder untouched.
    for teacher in teachers:
        if any(t is teacher and not cache.is_complete(t, split, view) for t, split, view in jobs):
            teacher.setup()
    summary = CacheSummary()
    started = time.perf_counter()
    unit = "img" if task.modality == "image" else "sample"
    with progress_bar(total=total, desc=f"cache {task.name}", unit=unit, disable=not cache.progress or rank != 0,
                      leave=False, dynamic_ncols=True) as bar:
        for teacher, split, view in jobs:
            bar.set_postfix_str(f"{teacher.name}/{split.name}" + (f"/view{view}" if view else ""))
            cache.ensure(teacher, split, view, summary, bar, runtime)
    if world_size > 1:
        # Every rank wrote its own shards; once all are done, rank 0 checks them and writes the entries.
        import torch.distributed as dist

        dist.barrier()
        if rank == 0:
            for teacher, split, view in jobs:
                cache.ensure(teacher, split, view, summary, None)
        dist.barrier()
    summary.seconds = time.perf_counter() - started
    if rank == 0:
        try:
            cache.store.update_manifest(
                summary.entries,
                {"time": now(), "task": task.name, "queries": dict(summary.queries), "reused": dict(summary.reused),
                 "seconds": round(summary.seconds, 3)},
            )
        except XDistillError:
            # Everything was found complete in a folder this user may not write (a shared, read-only
            # cache): the manifest is an index of what is there, and what is there did not change.
            if summary.queries or summary.recomputed_shards:
                raise
    if log is not None:
        ran = summary.teachers_run
        log(f"cached {len(teachers)} teachers x {len(split_names)} splits" + (f" + {views} views" if views else "")
            + f" in {summary.seconds:.1f}s; ran {', '.join(ran) if ran else 'no teacher (all cached)'}")
    return summary


def cached_outputs(task: Task, teachers: Iterable[Teacher], cache: TeacherCache, split: str) -> dict[str, CachedOutputs]:
    """Every teacher's outputs on one split, by teacher name."""
    return {t.name: cache.load(t, task.splits[split]) for t in teachers}


