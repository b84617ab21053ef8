"""The one training loop: any task kind, any student, any method.

A task kind hands the loop a :class:`TrainPlan`: the method's step function
(one batch -> named loss terms), how each epoch's batches are drawn, and how
to evaluate. The loop owns what every kind shares: the optimiser and its
learning-rate schedule, per-epoch history, checkpoints, resume, progress,
mixed precision and distributed averaging of the logged terms.

Deterministic with a seed: a plan derives its sample order and augmentations
from (seed, epoch, step), torch's RNG is reseeded from (seed, epoch), and a
checkpoint is written atomically after every epoch, so ``resume`` continues
an interrupted run and ends with the same weights as an uninterrupted one
(CPU, deterministic mode).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xdistill.data.prefetch import prefetched
from xdistill.errors import XDistillError
from xdistill.progress import ProgressBar, progress_bar
from xdistill.runtime import Runtime
from xdistill.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint, to_jsonable
from xdistill.train.config import DistillConfig


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)  # per epoch: mean loss terms, test metrics, seconds

    def to_json(self) -> list[dict]:
        return self.epochs


@dataclass
class TrainPlan:
    """What a task kind gives the loop.

    batches(epoch, rank, world_size) returns the epoch's ``step -> batch`` function; the step
    function sees ``context`` with ``context.step`` and ``context.total_steps`` set by the loop.
    """

    step: Callable[[nn.Module, Any, Any], dict[str, torch.Tensor]]
    context: Any
    steps_per_epoch: int
    batches: Callable[[int, int, int], Callable[[int], Any]]
    forward: Callable[[nn.Module], nn.Module] = lambda student: student  # the module a step calls
    modules: dict[str, nn.Module] = field(default_factory=dict)  # trained beside the student, checkpointed
    evaluate: Callable[[nn.Module], dict] | None = None  # test metrics after each epoch (rank 0)
    # Called with (student, epoch, the history's records so far) before each epoch, on every rank; what it
    # returns is logged as the epoch's "decisions". It must depend only on those (checkpointed) arguments, so a
    # resumed run decides the same.
    before_epoch: Callable[[nn.Module, int, list[dict]], dict] | None = None
    # Worker processes that prepare the next batches while a step runs (xdistill.data.prefetch); the
    # step -> batch function must then depend only on its arguments (its randomness from explicit seeds).
    loader_workers: int = 0


def seed_of(*parts: int) -> int:
    """A 31-bit seed derived from integer parts, e.g. (seed, epoch, step)."""
    return int(np.random.default_rng(list(parts)).integers(0, 2**31 - 1))


def cosine_lr(base: float, step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_student(student: nn.Module, plan: TrainPlan, config: DistillConfig, out_dir: Path | None,
                  runtime: Runtime | None = None) -> History:
    """Train ``student`` in place with ``plan`` and return its per-epoch history."""
    runtime = runtime or Runtime()
    student.to(config.device)
    modules = {"student": student, **{k: m.to(config.device) for k, m in plan.modules.items()}}
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    history, start_epoch = _resume(config, out_dir, modules, optimizer, runtime)
    model = plan.forward(student)
    model = runtime.wrap(model) if runtime.wrap is not None else model
    total = plan.steps_per_epoch * config.epochs
    plan.context.total_steps = total
    bar = progress_bar(total=total, initial=start_epoch * plan.steps_per_epoch, desc=config.method, unit="step",
                       leave=False, disable=not config.progress or runtime.rank != 0, dynamic_ncols=True)
    checkpoint = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            decisions = plan.before_epoch(student, epoch, history.epochs) if plan.before_epoch is not None else None
            means = _run_epoch(model, plan, config, optimizer, epoch, runtime, bar)
            record = {"epoch": epoch + 1, "train": means, "seconds": time.perf_counter() - started}
            if decisions is not None:
                record["decisions"] = decisions
            if plan.evaluate is not None and runtime.rank == 0 and scored_after(epoch, config):
                record["test"] = plan.evaluate(student)
            history.epochs.append(to_jsonable(record))
            if checkpoint is not None and runtime.rank == 0:
                save_checkpoint(checkpoint, modules, optimizer, {"epoch": epoch + 1, "history": history.epochs})
            if runtime.world_size > 1:
                import torch.distributed as dist

                dist.barrier()
    finally:
        bar.close()
    return history


def scored_after(epoch: int, config: DistillConfig) -> bool:
    """Whether the test split is scored after ``epoch`` (0-based): every ``eval_every`` epochs and after the
    last; never with ``eval_every=0``, where the run's final scores are its only ones."""
    if config.eval_every == 0:
        return False
    return (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs


def _resume(config: DistillConfig, out_dir: Path | None, modules: dict[str, nn.Module],
            optimizer: torch.optim.Optimizer, runtime: Runtime) -> tuple[History, int]:
    """The history and first epoch: from the checkpoint in ``out_dir`` with ``resume``, else afresh."""
    if not config.resume:
        return History(), 0
    checkpoint = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    if checkpoint is None or not checkpoint.is_file():
        raise XDistillError(f"--resume was given but '{checkpoint}' does not exist. Run without --resume to start afresh.")
    state = load_checkpoint(checkpoint, modules, optimizer)
    if runtime.info is not None:
        runtime.info(f"resumed from epoch {state['epoch']} of {config.epochs}")
    return History(state["history"]), state["epoch"]


def _run_epoch(model: nn.Module, plan: TrainPlan, config: DistillConfig, optimizer: torch.optim.Optimizer,
               epoch: int, runtime: Runtime, bar: ProgressBar) -> dict[str, float]:
    """One pass of ``plan.steps_per_epoch`` steps; returns the mean of each loss term (over ranks too)."""
    device = config.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if str(device).startswith("cuda") else contextlib.nullcontext()
    steps, total = plan.steps_per_epoch, plan.context.total_steps
    warmup = min(total // 20, 50)
    torch.manual_seed(seed_of(config.seed, epoch, 7))
    batch_of = plan.batches(epoch, runtime.rank, runtime.world_size)
    model.train()
    sums: dict[str, float] = {}
    for step, batch in enumerate(prefetched(batch_of, steps, plan.loader_workers)):
        plan.context.step = epoch * steps + step
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(config.lr, plan.context.step, total, warmup)
        with autocast:
            terms = plan.step(model, batch, plan.context)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        bar.update(1)
        bar.set_postfix({k: f"{v / (step + 1):.3f}" for k, v in sums.items()}, refresh=False)
    means = {k: v / steps for k, v in sums.items()}
    if runtime.world_size > 1:
        import torch.distributed as dist

        keys = sorted(means)
        values = torch.tensor([means[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        means = {k: float(v) / runtime.world_size for k, v in zip(keys, values)}
    return means
