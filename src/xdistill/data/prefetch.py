"""Prepare the next batches while the current one is being computed.

Decoding images from a folder (or reading rows of a cold memory map) and
augmenting them costs CPU time that would otherwise stall the teacher's or the
student's forward pass. :func:`prefetched` hands the production of each item
(a batch of inputs for extraction, a whole training batch for the loop) to a
PyTorch ``DataLoader`` with worker processes, which keeps at most
``workers x depth`` items ready: memory stays bounded whatever the split's size.

An item must depend only on its position (every batch producer here derives
its randomness from explicit seeds, see :func:`xdistill.data.augment.augment`),
so the items, and everything trained on them, are the same with or without
workers. Workers are forked (the producer is usually a closure over the split,
which cannot be pickled); where fork is not available, or with ``workers=0``,
items are produced in the calling process, one at a time.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch.utils.data

T = TypeVar("T")

AUTO = -1  # a ``loader_workers`` value: choose from the data (see :func:`auto_workers`)
PREFETCH_DEPTH = 2  # items each worker keeps ready (the DataLoader's prefetch_factor)


class _Positions(torch.utils.data.Dataset):
    """Item ``i`` is ``produce(i)``, for ``i`` in ``0..count-1``."""

    def __init__(self, produce: Callable[[int], Any], count: int) -> None:
        self.produce, self.count = produce, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Any:
        return self.produce(i)


def _as_is(item: Any) -> Any:
    return item


def _one_thread(_: int) -> None:
    # A worker shares the machine with the process that trains; several torch threads per worker
    # would only compete with it.
    import torch

    torch.set_num_threads(1)


def can_fork() -> bool:
    """Whether worker processes can be forked here (Linux and macOS; not Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def prefetched(produce: Callable[[int], T], count: int, workers: int = 0,
               depth: int = PREFETCH_DEPTH) -> Iterator[T]:
    """``produce(0), produce(1), ..., produce(count - 1)`` in order, made ``workers`` at a time in
    background processes with at most ``workers * depth`` items waiting; in this process when
    ``workers`` is 0 or processes cannot be forked."""
    if workers <= 0 or count <= 1 or not can_fork():
        for i in range(count):
            yield produce(i)
        return
    loader = torch.utils.data.DataLoader(
        _Positions(produce, count), batch_size=None, shuffle=False, num_workers=min(workers, count),
        prefetch_factor=depth, collate_fn=_as_is, worker_init_fn=_one_thread,
        multiprocessing_context=multiprocessing.get_context("fork"),
    )
    yield from loader


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the platform tells it, else the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auto_workers(*arrays: Any) -> int:
    """Workers worth starting for these inputs: one when any of them is an image folder (decoding
    is the cost a worker hides) and the machine has a core to spare, else none (an array in memory
    or a memory map is read faster in place than sent from a worker)."""
    from xdistill.data.lazy import ImageFolderArray

    if not any(isinstance(a, ImageFolderArray) for a in arrays):
        return 0
    return 1 if usable_cores() > 1 else 0


def resolve_workers(requested: int, *arrays: Any) -> int:
    """``requested`` when it is a count (>= 0), :func:`auto_workers` for :data:`AUTO`."""
    return auto_workers(*arrays) if requested == AUTO else requested


__all__ = ["AUTO", "PREFETCH_DEPTH", "auto_workers", "can_fork", "prefetched", "resolve_workers", "usable_cores"]
