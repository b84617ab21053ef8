"""Classification batches: labeled samples with their labels, plus (for methods
that use them) unlabeled samples in a weak and a strong augmented view.

Every method takes the same number of steps, one pass over the unlabeled pool
per epoch, so baselines and distillation get the same compute. A lazy split is
indexed per step (only the batch's rows are read or decoded); teacher targets
come from the combined, precomputed targets, one lookup per step whatever the
number of teachers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from xdistill.data.augment import augment
from xdistill.data.task import Task
from xdistill.kinds.classification.kd_augment import HARD_VIEW_OFFSET, mixup
from xdistill.kinds.classification.steps import Batch
from xdistill.train.config import DistillConfig
from xdistill.train.inputs import StudentInputs, epoch_order
from xdistill.train.loop import seed_of
from xdistill.train.method import Method


def steps_per_epoch(task: Task, config: DistillConfig) -> int:
    """The same for every method: one pass over the unlabeled pool in unlabeled batches, at most
    ``config.max_steps_per_epoch`` when that is set (fixed-cost runs on large pools)."""
    unlabeled_batch = config.batch_size * config.unlabeled_ratio
    steps = max(1, math.ceil(len(task.unlabeled) / unlabeled_batch))
    return min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch > 0 else steps


@dataclass
class BatchSource:
    """Draws each epoch's batches for one method, deterministically from (seed, epoch, step)."""

    task: Task
    inputs: StudentInputs
    method: Method
    config: DistillConfig
    # epoch -> the labeled positions to train on in that epoch; None = all of them (see trust.held_out_labels)
    labeled_pool: Callable[[int], np.ndarray] | None = None

    @property
    def steps(self) -> int:
        return steps_per_epoch(self.task, self.config)

    def epoch(self, epoch: int, rank: int = 0, world_size: int = 1) -> Callable[[int], Batch]:
        """The epoch's ``step -> Batch``; each rank takes every world_size-th sample of one shared
        order (DistributedSampler's split)."""
        cfg, steps = self.config, self.steps
        b, u = cfg.batch_size, cfg.batch_size * cfg.unlabeled_ratio
        pool = np.arange(len(self.task.labeled)) if self.labeled_pool is None else self.labeled_pool(epoch)
        order_l = pool[epoch_order(len(pool), steps * b * world_size, cfg.seed, epoch, 0)[rank::world_size]]
        order_u = epoch_order(len(self.task.unlabeled), steps * u * world_size, cfg.seed, epoch, 1)[rank::world_size]
        view_rng = np.random.default_rng([cfg.seed, epoch, 2])
        view_choice = view_rng.integers(0, cfg.views + 1, size=steps * u * world_size)[rank::world_size]

        def batch(step: int) -> Batch:
            idx_l = order_l[step * b:(step + 1) * b]
            s = seed_of(cfg.seed, epoch, step)
            x_l = self.inputs.augmented(self.task.labeled, idx_l, "weak", s, 0)
            out = Batch(x_l.to(cfg.device), torch.as_tensor(self.task.labeled.y[idx_l], device=cfg.device), idx_l)
            if self.task.labeled.soft is not None:
                out.soft_labeled = torch.as_tensor(self.task.labeled.soft[idx_l], device=cfg.device)
            if self.method.unlabeled:
                self._add_unlabeled(out, order_u[step * u:(step + 1) * u], view_choice[step * u:(step + 1) * u], s)
            return out

        return batch

    def _add_unlabeled(self, batch: Batch, idx_u: np.ndarray, views: np.ndarray, s: int) -> None:
        cfg, split = self.config, self.task.unlabeled
        strong = self.method.strong_views or (self.method.teachers and cfg.self_training)
        if self.inputs.kind == "image":
            raw = self.inputs.raw_images(split, idx_u)
            weak = self._cached_views(raw, idx_u, views) if cfg.views > 0 else augment(raw, "weak", s, 1)
            batch.raw_unlabeled = weak
            batch.x_unlabeled = self.inputs.normalise(weak).to(cfg.device)
            if strong:
                batch.x_strong = self.inputs.normalise(augment(raw, "strong", s, 2)).to(cfg.device)
            if self.method.teachers and cfg.kd_augment == "mixup":
                batch.raw_augmented, batch.mix_partner, batch.mix_lambda = mixup(weak, s, cfg.mixup_alpha)
                batch.x_augmented = self.inputs.normalise(batch.raw_augmented).to(cfg.device)
            elif self.method.teachers and cfg.kd_augment == "hard":
                batch.raw_candidates = torch.stack([augment(raw, "strong", s, HARD_VIEW_OFFSET + k)
                                                    for k in range(cfg.hard_candidates)])
                batch.x_candidates = self.inputs.normalise(batch.raw_candidates).to(cfg.device)
        else:
            batch.x_unlabeled = self.inputs.encode(split, idx_u).to(cfg.device)
            if strong:
                batch.x_strong = batch.x_unlabeled
        batch.index_unlabeled, batch.views = idx_u, views

    def _cached_views(self, raw: torch.Tensor, idx_u: np.ndarray, views: np.ndarray) -> torch.Tensor:
        """Show each sample in one of the cached views, exactly as the cache augmented it."""
        weak = raw.clone()
        for v in np.unique(views):
            if v == 0:
                continue
            mask = torch.as_tensor(views == v)
            weak[mask] = augment(raw[mask], "weak", self.config.augment_seed, int(v), indices=idx_u[views == v],
                                 total=len(self.task.unlabeled))
        return weak
