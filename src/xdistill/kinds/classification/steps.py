"""Classification training steps: each turns one batch into named loss terms.

Every method sees the same student, data, augmentation and number of steps;
the steps differ only in what they ask of the unlabeled data:

- :func:`supervised_step`: cross-entropy on the labeled batch only;
- :func:`fixmatch_step`: Sohn et al. 2020: pseudo-labels from the weakly
  augmented view above a confidence threshold supervise the strongly
  augmented view;
- :func:`distill_step`: cross-entropy on the labels plus the configured
  distillation loss towards the teachers' target-space predictions (see
  :mod:`xdistill.kinds.classification.targets`), plus (``self_training``, on
  by default) FixMatch's consistency term, optionally with feature
  distillation through learned projectors. With ``anneal`` (the default) the
  distillation term is weighted by the epoch's decision between teachers and
  student, and each unlabeled sample takes either the teachers' target or the
  student's own pseudo-label (:mod:`xdistill.kinds.classification.trust`);
  without it, by the teachers' chance-corrected reliability alone. A labeled
  sample's target mixes its one-hot label (share ``label_mix``) into the
  teachers' prediction.

The methods that use them are declared one per file in
:mod:`xdistill.kinds.classification.methods`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdistill.kinds.classification.kd_augment import hardest, mixed_targets
from xdistill.kinds.classification.targets import TeacherTargets
from xdistill.kinds.classification.trust import Decision, route
from xdistill.losses import call_loss
from xdistill.losses.alignment import layout, read_stage
from xdistill.train.config import DistillConfig


@dataclass
class Batch:
    """One training step's inputs (already augmented and normalised)."""

    x_labeled: Tensor  # [B, ...]
    y_labeled: Tensor  # [B]
    index_labeled: np.ndarray  # [B] positions in the labeled split
    x_unlabeled: Tensor | None = None  # [B*mu, ...] weak view (or the cached view)
    index_unlabeled: np.ndarray | None = None
    views: np.ndarray | None = None  # [B*mu] the cached view each unlabeled sample is shown in (0 = clean/fresh)
    x_strong: Tensor | None = None  # [B*mu, ...] strong view (FixMatch)
    raw_unlabeled: Tensor | None = None  # [B*mu, C, H, W] the weak view before normalisation (online teachers)
    # kd_augment (xdistill.kinds.classification.kd_augment): mixup's images and partners, or hard's candidates
    x_augmented: Tensor | None = None  # [B*mu, ...] mixed images, normalised
    raw_augmented: Tensor | None = None  # [B*mu, C, H, W] the same before normalisation (online teachers)
    mix_partner: np.ndarray | None = None  # [B*mu] the batch position each image is mixed with
    mix_lambda: np.ndarray | None = None  # [B*mu] the mixed image's share of its own image
    x_candidates: Tensor | None = None  # [K, B*mu, ...] strong views, normalised
    raw_candidates: Tensor | None = None  # [K, B*mu, C, H, W] the same before normalisation
    soft_labeled: Tensor | None = None  # [B, C] the labeled split's soft labels, when it has them (Split.soft)


@dataclass
class StepContext:
    config: DistillConfig
    num_classes: int
    step: int = 0
    total_steps: int = 1
    targets: TeacherTargets | None = None
    projectors: nn.ModuleDict | None = None
    online_targets: Callable[[Tensor, np.ndarray], tuple[np.ndarray, dict]] | None = None
    decision: Decision | None = None  # this epoch's choice between teachers and student (config 'anneal')


class FeaturesAndLogits(nn.Module):
    """A student seen as one module returning (features [N, D], logits [N, C]), so a
    DistributedDataParallel wrapper sees every forward pass and syncs every gradient. With ``exits``
    (:mod:`xdistill.kinds.classification.exits`, for the ``ofa`` loss) or a layout projector's kind
    ``projector`` (:mod:`xdistill.losses.alignment`) it returns (features, logits, the exit branches' logits [S
    tensors [N, C], empty without exits], the layout [N, Df + T * Ds] of the pooled features and the stage that
    projector reads, or None), all from one pass."""

    def __init__(self, student: nn.Module, exits: nn.Module | None = None, projector: str | None = None) -> None:
        super().__init__()
        self.student = student
        self.exits = exits
        self.projector = projector

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        if self.exits is None and self.projector is None:
            features = self.student.forward_features(x)
            return features, self.student.head(features)
        features, stages = self.student.forward_with_stages(x)
        exit_logits = [] if self.exits is None else self.exits(stages[:-1])
        rows = None if self.projector is None else layout(features, read_stage(self.projector, stages))
        return features, self.student.head(features), exit_logits, rows


def student_forward(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(features [N, D], logits [N, C]) in one pass of a :class:`FeaturesAndLogits` (or its DDP wrapper)."""
    return model(x)[:2]


def labeled_cross_entropy(logits: Tensor, batch: Batch) -> Tensor:
    """Cross-entropy of the labeled rows' logits [B, C]: towards their soft labels [B, C] when the labeled split
    has them (-sum_c q_c log p_c, averaged over the batch), else towards their hard labels [B]."""
    if batch.soft_labeled is None:
        return F.cross_entropy(logits, batch.y_labeled)
    return -(batch.soft_labeled * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def supervised_step(student: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    _, logits = student_forward(student, batch.x_labeled)
    ce = labeled_cross_entropy(logits, batch)
    return {"loss": ce, "ce": ce.detach()}


def fixmatch_step(student: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    b, u = len(batch.x_labeled), len(batch.x_unlabeled)
    _, logits = student_forward(student, torch.cat([batch.x_labeled, batch.x_unlabeled, batch.x_strong]))
    logits_l, logits_w, logits_s = logits[:b], logits[b:b + u], logits[b + u:]
    ce = labeled_cross_entropy(logits_l, batch)
    with torch.no_grad():
        confidence, pseudo = F.softmax(logits_w.detach().float(), dim=1).max(dim=1)
        mask = (confidence >= ctx.config.fixmatch_threshold).float()
    unlabeled = (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
    total = ctx.config.label_weight * ce + ctx.config.fixmatch_weight * unlabeled
    return {"loss": total, "ce": ce.detach(), "unlabeled": unlabeled.detach(), "mask": mask.mean()}


def distill_step(student: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    return distill_terms(student, batch, ctx, dual=False)


def dho_step(student: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    """Dual-head optimisation (:mod:`xdistill.students.dual_head`): the student's head returns the supervised
    head's logits then the distillation head's; cross-entropy on the labels trains the first, everything the
    distillation step does with the unlabeled data (the teachers' targets, pseudo-labels) trains the second."""
    return distill_terms(student, batch, ctx, dual=True)


def distill_terms(student: nn.Module, batch: Batch, ctx: StepContext, dual: bool) -> dict[str, Tensor]:
    cfg = ctx.config
    b, u = len(batch.x_labeled), len(batch.x_unlabeled)
    strong = [batch.x_strong] if cfg.self_training else []
    # kd_augment: the distillation term's unlabeled rows are other images, with their own targets [U, C]
    augmented, augmented_targets = shown_to_teachers(student, batch, ctx, dual)
    views = [batch.x_labeled, batch.x_unlabeled] + strong + ([augmented] if augmented is not None else [])
    # more: the exit branches' logits (the ofa loss) and the layout (a layout projector), when asked for
    features, logits_all, *more = student(torch.cat(views))
    exit_all, stage = (more[0], more[1]) if more else ([], None)
    supervised = logits_all[:b]
    if dual:  # [N, 2C]: the supervised head's logits, then the distillation head's
        supervised, logits_all = logits_all[:b, :ctx.num_classes], logits_all[:, ctx.num_classes:]
    features, logits = (features if stage is None else stage)[:b + u], logits_all[:b + u]
    strong_logits = logits_all[b + u:b + u + len(strong) * u]
    ce = labeled_cross_entropy(supervised, batch)
    targets = ctx.targets
    if ctx.online_targets is not None and augmented is None:
        target_u, teacher_features = ctx.online_targets(batch.raw_unlabeled, batch.index_unlabeled)
    else:
        target_u, teacher_features = targets.unlabeled(batch.views, batch.index_unlabeled), None
    target_l = labeled_targets(targets.combined["labeled"][batch.index_labeled], batch.y_labeled.cpu().numpy(),
                               ctx.num_classes, cfg.label_mix)
    soft = torch.as_tensor(np.concatenate([target_l, target_u]), dtype=torch.float32, device=logits.device)
    with torch.no_grad():
        student_probs = F.softmax(logits[b:].detach().float(), dim=1)
    if cfg.anneal and ctx.decision is not None:
        decision = ctx.decision
        weight = decision.weight
        r_t = 1.0 if decision.teacher_reliability is None else decision.teacher_reliability
        r_s = 1.0 if decision.student_reliability is None else decision.student_reliability
        own, to_teacher = route(student_probs, soft[b:], weight, r_t, r_s, cfg.fixmatch_threshold)
    else:
        weight = targets.scale(ctx.num_classes) if cfg.reliability else 1.0
        own = student_probs.max(dim=1).values >= cfg.fixmatch_threshold
        to_teacher = torch.ones(u, dtype=torch.bool, device=logits.device)
    rows = torch.cat([torch.ones(b, dtype=torch.bool, device=logits.device), to_teacher])
    # Unlabeled samples that look outside the label set weigh less (xdistill.kinds.classification.pool);
    # None on a clean pool, where the step is exactly the unweighted one.
    pool = None if targets is None else targets.pool_weight(batch.index_unlabeled)
    kd_logits, kd_soft, kd_pool = logits, soft, pool
    kd_exits = [e[:b + u] for e in exit_all]
    if augmented is not None:
        kd_logits = torch.cat([logits[:b], logits_all[b + u + len(strong) * u:]])
        kd_exits = [torch.cat([e[:b], e[b + u + len(strong) * u:]]) for e in exit_all]
        kd_soft = torch.cat([soft[:b], torch.as_tensor(augmented_targets, dtype=torch.float32, device=logits.device)])
        if pool is not None and batch.mix_partner is not None:  # a mixed image weighs as its mix of the two
            kd_pool = batch.mix_lambda * pool + (1 - batch.mix_lambda) * pool[batch.mix_partner]
    hard = torch.cat([batch.y_labeled, kd_soft[b:].argmax(dim=1)])
    inputs = {"student_logits": kd_logits[rows].float(), "teacher_probs": kd_soft[rows],
              "target_probs": kd_soft[rows], "labels": hard[rows], "temperature": cfg.kd_temperature,
              "exit_logits": [e[rows].float() for e in kd_exits]}
    row_weight = None
    if pool is not None:
        pool = torch.as_tensor(pool, dtype=torch.float32, device=logits.device)
        kd_pool = torch.as_tensor(kd_pool, dtype=torch.float32, device=logits.device)
        row_weight = torch.cat([torch.ones(b, device=logits.device), kd_pool])[rows]
    # The loss averages over the rows it sees; rescaled so each row weighs as in a batch of b + u rows.
    kd = call_loss(cfg.loss, inputs, ctx.step, ctx.total_steps, weight=row_weight)["loss"] * (rows.sum() / (b + u))
    total = cfg.label_weight * ce + cfg.kd_weight * weight * kd
    extra: dict[str, Tensor] = {"teacher_share": to_teacher.float().mean()}
    if pool is not None:
        extra["pool_weight"] = pool.mean()
    if cfg.self_training:
        pseudo = student_probs.argmax(dim=1)
        mask = own.float() if pool is None else own.float() * pool
        extra["consistency"] = (F.cross_entropy(strong_logits, pseudo, reduction="none") * mask).mean()
        total = total + cfg.fixmatch_weight * extra["consistency"]
    if cfg.feature_weight > 0 and ctx.projectors is not None:
        extra["feature"] = feature_term(features, batch, ctx, teacher_features, hard)
        total = total + cfg.feature_weight * extra["feature"]
    return {"loss": total, "ce": ce.detach(), "kd": kd.detach(), **{k: v.detach() for k, v in extra.items()}}


def shown_to_teachers(student: nn.Module, batch: Batch, ctx: StepContext,
                      dual: bool) -> tuple[Tensor | None, np.ndarray | None]:
    """(student inputs [U, ...], their teacher targets [U, C]) of the distillation term's unlabeled rows under
    ``kd_augment`` (:mod:`xdistill.kinds.classification.kd_augment`), or (None, None) without it."""
    cfg = ctx.config
    if cfg.kd_augment == "mixup":
        if ctx.online_targets is not None:
            return batch.x_augmented, ctx.online_targets(batch.raw_augmented, batch.index_unlabeled)[0]
        cached = ctx.targets.unlabeled(batch.views, batch.index_unlabeled)
        return batch.x_augmented, mixed_targets(cached, batch.mix_partner, batch.mix_lambda)
    if cfg.kd_augment == "hard":
        k, u = batch.x_candidates.shape[:2]
        teacher = np.stack([ctx.online_targets(batch.raw_candidates[i], batch.index_unlabeled)[0] for i in range(k)])
        was_training = student.training
        student.eval()  # scoring passes leave the batch-norm statistics alone
        with torch.no_grad():
            _, logits = student_forward(student, batch.x_candidates.flatten(0, 1))
        student.train(was_training)
        if dual:
            logits = logits[:, ctx.num_classes:] if logits.shape[1] == 2 * ctx.num_classes else logits
        student_probs = F.softmax(logits.float(), dim=1).reshape(k, u, -1)
        chosen = hardest(student_probs, torch.as_tensor(teacher, device=student_probs.device)).cpu().numpy()
        rows = np.arange(u)
        return batch.x_candidates[chosen, rows], teacher[chosen, rows]
    return None, None


def labeled_targets(teacher_probs: np.ndarray, labels: np.ndarray, num_classes: int, label_mix: float) -> np.ndarray:
    """[B, C] targets of labeled samples: (1 - label_mix) * the teachers' prediction [B, C] + label_mix * one-hot(labels [B])
    (ground truth guides the teachers where it is known, as in "Even your teacher needs guidance")."""
    onehot = np.eye(num_classes, dtype=np.float32)[labels]
    return ((1.0 - label_mix) * teacher_probs + label_mix * onehot).astype(np.float32)


def feature_term(features: Tensor, batch: Batch, ctx: StepContext, online: dict | None, labels: Tensor) -> Tensor:
    """Weighted feature distillation towards each teacher through its projector; features [B + U, Ds] (or the
    layout tokens [B + U, 1 + T, D] for a layout projector, config 'projector'), labels
    [B + U] (the labels, then the targets' argmax)."""
    targets, cfg = ctx.targets, ctx.config
    total = torch.zeros((), device=features.device)
    for name, weight in zip(targets.names, targets.weights):
        if name not in ctx.projectors:
            continue
        tf_u = online[name] if online is not None else _view_features(targets, name, batch.views, batch.index_unlabeled)
        tf = np.concatenate([targets.features[name]["labeled"][batch.index_labeled], tf_u])
        inputs = {"student_features": features.float(), "projector": ctx.projectors[name], "labels": labels,
                  "teacher_features": torch.as_tensor(tf, dtype=torch.float32, device=features.device),
                  "teacher_class_means": torch.as_tensor(targets.class_means[name], device=features.device)}
        total = total + float(weight) * call_loss(cfg.feature_loss, inputs, ctx.step, ctx.total_steps)["loss"]
    return total


def _view_features(targets: TeacherTargets, name: str, views: np.ndarray, index: np.ndarray) -> np.ndarray:
    feats = targets.features[name]
    first = feats["unlabeled"]
    out = np.empty((len(index), first.shape[1]), dtype=np.float32)
    for v in np.unique(views):
        key = "unlabeled" if v == 0 else f"unlabeled@{v}"
        mask = views == v
        out[mask] = feats[key][index[mask]]
    return out
