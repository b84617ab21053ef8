"""Time and memory of one training step of a generation method, each method measured alone in a fresh process.

A step is one update of the student (for ``dmd``, ``sid`` and ``multi-student``: one generator update with the
fake-score updates that go with it). The child loads the teacher and the task exactly as ``xdistill distill``
does, hands freed heap back to the system (``malloc_trim``), resets the kernel's peak-resident mark
(``/proc/self/clear_refs``) and notes its resident memory; it then trains ``COST_ITERATIONS`` steps. Memory is
the peak resident set during training above that start (``VmHWM - VmRSS``, Linux): the networks the method adds
beside the teacher, their gradients and optimiser states, and the activations of a step. Time per step is the
method's last stage's seconds over its updates (consistency's last segment stage, each multi-student student's
distribution matching), on whatever else the machine runs at the time.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace

COST_ITERATIONS = 8  # student updates timed per method (consistency: split over its segment stages)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_in_this_process(task_dir: str, zoo: str, method_name: str, settings: dict, iterations: int) -> dict:
    """Train ``method_name`` for ``iterations`` steps here and return its time per step and peak memory."""
    import torch

    from xdistill.kinds.generation.methods import METHODS
    from xdistill.kinds.generation.run import check_fit, diffusion_teacher, method_context, resolve_generation
    from xdistill.kinds.generation.task import load_generation_task
    from xdistill.train.config import DistillConfig

    task = load_generation_task(Path(task_dir))
    method = METHODS.get(method_name)
    config = resolve_generation(DistillConfig(task=task_dir, zoo=zoo, method=method_name, progress=False,
                                              **{**settings, "iterations": iterations}), task)
    teacher = diffusion_teacher(config, SimpleNamespace(teachers=None))
    check_fit(teacher.denoiser, task)
    config = dataclasses.replace(config, guidance=config.guidance or teacher.guidance,
                                 teacher_steps=config.teacher_steps or method.default_teacher_steps)
    ctx = method_context(method, config, task, teacher.denoiser)
    torch.manual_seed(config.seed)
    gc.collect()
    _trim_heap()
    Path("/proc/self/clear_refs").write_text("5")  # the peak mark restarts at the current resident set
    start_kib = _status_kib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    distilled = method.train(ctx)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak_kib = _status_kib("VmHWM")
    last = distilled.history[-1]
    return {"method": method_name, "iterations": iterations, "seconds_per_step": last["seconds"] / last["iterations"],
            "train_seconds": seconds, "train_cpu_seconds": cpu_seconds,
            "peak_memory_mib": (peak_kib - start_kib) / 1024, "threads": torch.get_num_threads()}


def measure_training_cost(task_dir: Path, zoo: Path, method_name: str, settings: dict,
                          iterations: int = COST_ITERATIONS) -> dict:
    """``measure_in_this_process`` in a fresh child process, so no other run's memory is counted."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measure_in_this_process, str(task_dir), str(zoo), method_name, dict(settings),
                           iterations).result()
