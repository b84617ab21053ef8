"""The one training loop: labeled plus unlabeled target data, any student,
any method (a step function from :mod:`xdistill.train.methods`).

Deterministic with a seed: the sample order, the augmentations and torch's
RNG are all derived from (seed, epoch, step), and a checkpoint is written
atomically after every epoch, so ``resume`` continues an interrupted run and
ends with the same weights as an uninterrupted one (CPU, deterministic mode).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from xdistill.progress import progress_bar

from xdistill.data.task import Task
from xdistill.errors import XDistillError
from xdistill.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint, to_jsonable
from xdistill.train.config import DistillConfig
from xdistill.train.inputs import StudentInputs, epoch_order
from xdistill.train.methods import Batch, FeaturesAndLogits, Method, StepContext


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)  # per epoch: mean loss terms, test metrics, seconds

    def to_json(self) -> list[dict]:
        return self.epochs


def steps_per_epoch(task: Task, config: DistillConfig) -> int:
    """The same for every method: one pass over the unlabeled pool in unlabeled batches."""
    unlabeled_batch = config.batch_size * config.unlabeled_ratio
    return max(1, math.ceil(len(task.unlabeled) / unlabeled_batch))


def _seed(*parts: int) -> int:
    return int(np.random.default_rng(list(parts)).integers(0, 2**31 - 1))


def make_batch(task: Task, inputs: StudentInputs, method: Method, config: DistillConfig, epoch: int, step: int,
               order_l: np.ndarray, order_u: np.ndarray, view_choice: np.ndarray, device: str) -> Batch:
    b, u = config.batch_size, config.batch_size * config.unlabeled_ratio
    idx_l = order_l[step * b:(step + 1) * b]
    s = _seed(config.seed, epoch, step)
    x_l = inputs.augmented(task.labeled, idx_l, "weak", s, 0)
    batch = Batch(x_l.to(device), torch.as_tensor(task.labeled.y[idx_l], device=device), idx_l)
    if not method.uses_unlabeled:
        return batch
    idx_u = order_u[step * u:(step + 1) * u]
    views = view_choice[step * u:(step + 1) * u]
    if inputs.kind == "image":
        raw = inputs.raw_images(task.unlabeled, idx_u)
        from xdistill.data.augment import augment

        if config.views > 0:
            # Show each sample in one of the cached views, exactly as the cache augmented it.
            weak = raw.clone()
            for v in np.unique(views):
                if v == 0:
                    continue
                mask = views == v
                weak[torch.as_tensor(mask)] = augment(raw[torch.as_tensor(mask)], "weak", config.augment_seed, int(v),
                                                      indices=idx_u[mask], total=len(task.unlabeled))
        else:
            weak = augment(raw, "weak", s, 1)
        batch.raw_unlabeled = weak
        batch.x_unlabeled = inputs.normalise(weak).to(device)
        if method.uses_strong or (method.uses_teachers and config.self_training):
            batch.x_strong = inputs.normalise(augment(raw, "strong", s, 2)).to(device)
    else:
        batch.x_unlabeled = inputs.encode(task.unlabeled, idx_u).to(device)
        if method.uses_strong or (method.uses_teachers and config.self_training):
            batch.x_strong = batch.x_unlabeled
    batch.index_unlabeled, batch.views = idx_u, views
    return batch


def cosine_lr(base: float, step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_student(student: nn.Module, method: Method, ctx: StepContext, task: Task, inputs: StudentInputs,
                  config: DistillConfig, out_dir: Path | None, evaluate: Callable[[nn.Module], dict] | None = None,
                  log: Callable[[str], None] | None = None, rank: int = 0, world_size: int = 1,
                  wrap: Callable[[nn.Module], nn.Module] | None = None,
                  on_epoch: Callable[[int, dict], None] | None = None) -> History:
    """Train ``student`` in place and return its per-epoch history."""
    device = config.device
    student.to(device)
    projectors = ctx.projectors.to(device) if ctx.projectors is not None else None
    params = list(student.parameters()) + (list(projectors.parameters()) if projectors is not None else [])
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    modules = {"student": student, **({"projectors": projectors} if projectors is not None else {})}
    history = History()
    start_epoch = 0
    checkpoint = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    if config.resume:
        if checkpoint is None or not checkpoint.is_file():
            raise XDistillError(f"--resume was given but '{checkpoint}' does not exist. Run without --resume to start afresh.")
        state = load_checkpoint(checkpoint, modules, optimizer)
        start_epoch, history.epochs = state["epoch"], state["history"]
        if log is not None and rank == 0:
            log(f"resumed from epoch {start_epoch} of {config.epochs}")
    model = wrap(FeaturesAndLogits(student)) if wrap is not None else FeaturesAndLogits(student)
    steps = steps_per_epoch(task, config)
    total = steps * config.epochs
    ctx.total_steps = total
    warmup = min(total // 20, 50)
    b, u = config.batch_size, config.batch_size * config.unlabeled_ratio
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if str(device).startswith("cuda") else contextlib.nullcontext()
    bar = progress_bar(total=total, initial=start_epoch * steps, desc=f"{config.method}", unit="step", leave=False,
               disable=not config.progress or rank != 0, dynamic_ncols=True)
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            torch.manual_seed(_seed(config.seed, epoch, 7))
            # Each rank takes every world_size-th sample of one shared order (DistributedSampler's split).
            order_l = epoch_order(len(task.labeled), steps * b * world_size, config.seed, epoch, 0)[rank::world_size]
            order_u = epoch_order(len(task.unlabeled), steps * u * world_size, config.seed, epoch, 1)[rank::world_size]
            view_rng = np.random.default_rng([config.seed, epoch, 2])
            view_choice = view_rng.integers(0, config.views + 1, size=steps * u * world_size)[rank::world_size]
            model.train()
            sums: dict[str, float] = {}
            for step in range(steps):
                ctx.step = epoch * steps + step
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(config.lr, ctx.step, total, warmup)
                batch = make_batch(task, inputs, method, config, epoch, step, order_l, order_u, view_choice, device)
                with autocast:
                    terms = method.step(model, batch, ctx)
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                bar.update(1)
                bar.set_postfix({k: f"{v / (step + 1):.3f}" for k, v in sums.items()}, refresh=False)
            means = {k: v / steps for k, v in sums.items()}
            if world_size > 1:
                import torch.distributed as dist

                keys = sorted(means)
                values = torch.tensor([means[k] for k in keys], dtype=torch.float64)
                dist.all_reduce(values)
                means = {k: float(v) / world_size for k, v in zip(keys, values)}
            record = {"epoch": epoch + 1, "train": means, "seconds": time.perf_counter() - started}
            if evaluate is not None and rank == 0:
                record["test"] = evaluate(student)
            history.epochs.append(to_jsonable(record))
            if on_epoch is not None:
                on_epoch(epoch + 1, record)
            if checkpoint is not None and rank == 0:
                save_checkpoint(checkpoint, modules, optimizer, {"epoch": epoch + 1, "history": history.epochs})
            if world_size > 1:
                import torch.distributed as dist

                dist.barrier()
    finally:
        bar.close()
    return history
