"""Training methods as functions: each turns one batch into named loss terms.

Every method sees the same student, data, augmentation and number of steps;
they differ only in what they ask of the unlabeled data:

- ``supervised``: cross-entropy on the labeled batch only.
- ``finetune``: the same, from a generic pretrained student (``init``).
- ``fixmatch``: Sohn et al. 2020: pseudo-labels from the weakly augmented view
  above a confidence threshold supervise the strongly augmented view.
- ``nearest`` / ``weighted`` / ``ensemble`` / ``partition``: cross-entropy on the
  labels plus a distillation loss towards the teachers' target-space
  predictions on labeled and unlabeled samples (see :mod:`xdistill.train.targets`),
  scaled by the teachers' measured reliability, plus (``self_training``, on by
  default) FixMatch's consistency term, optionally with feature distillation
  through learned projectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdistill.losses import LOSSES, taid_schedule
from xdistill.registry import Registry
from xdistill.train.config import DistillConfig
from xdistill.train.targets import TeacherTargets


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


@dataclass
class StepContext:
    config: DistillConfig
    num_classes: int
    step: int = 0
    total_steps: int = 1
    targets: TeacherTargets | None = None
    projectors: nn.ModuleDict | None = None
    online_targets: Callable[[Tensor, np.ndarray], tuple[np.ndarray, dict]] | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    step: Callable[[nn.Module, Batch, StepContext], dict[str, Tensor]]
    uses_teachers: bool = False
    uses_unlabeled: bool = False
    uses_strong: bool = False
    uses_init: bool = False
    summary: str = ""


METHODS: Registry[Method] = Registry("method")


class FeaturesAndLogits(nn.Module):
    """A student seen as one module returning (features [N, D], logits [N, C]), so a
    DistributedDataParallel wrapper sees every forward pass and syncs every gradient."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.student.forward_features(x)
        return features, self.student.head(features)


def student_forward(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(features [N, D], logits [N, C]) in one pass of a :class:`FeaturesAndLogits` (or its DDP wrapper)."""
    return model(x)


def supervised_step(student: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    _, logits = student_forward(student, batch.x_labeled)
    ce = F.cross_entropy(logits, batch.y_labeled)
    return {"loss": ce, "ce": ce.detach()}


def fixmatch_step(student: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    b, u = len(batch.x_labeled), len(batch.x_unlabeled)
    _, logits = student_forward(student, torch.cat([batch.x_labeled, batch.x_unlabeled, batch.x_strong]))
    logits_l, logits_w, logits_s = logits[:b], logits[b:b + u], logits[b + u:]
    ce = F.cross_entropy(logits_l, batch.y_labeled)
    with torch.no_grad():
        confidence, pseudo = F.softmax(logits_w.detach().float(), dim=1).max(dim=1)
        mask = (confidence >= ctx.config.fixmatch_threshold).float()
    unlabeled = (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
    total = ctx.config.label_weight * ce + ctx.config.fixmatch_weight * unlabeled
    return {"loss": total, "ce": ce.detach(), "unlabeled": unlabeled.detach(), "mask": mask.mean()}


def distillation_loss(logits: Tensor, targets: Tensor, hard: Tensor, ctx: StepContext) -> dict[str, Tensor]:
    """The configured logit loss towards target probabilities [N, C]."""
    cfg = ctx.config
    name = cfg.loss
    fn = LOSSES.get(name)
    if name == "dkd":
        return fn(logits, targets, hard, temperature=cfg.temperature)
    if name == "taid":
        return fn(logits, targets, taid_schedule(ctx.step, ctx.total_steps), temperature=cfg.temperature)
    return fn(logits, targets, temperature=cfg.temperature)


def distill_step(student: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    cfg = ctx.config
    b, u = len(batch.x_labeled), len(batch.x_unlabeled)
    inputs = [batch.x_labeled, batch.x_unlabeled]
    if cfg.self_training:
        inputs.append(batch.x_strong)
    features, logits = student_forward(student, torch.cat(inputs))
    features, logits_all = features[:b + u], logits
    logits = logits_all[:b + u]
    logits_l = logits[:b]
    ce = F.cross_entropy(logits_l, batch.y_labeled)
    targets = ctx.targets
    target_l = targets.combined["labeled"][batch.index_labeled]
    extra_terms: dict[str, Tensor] = {}
    if ctx.online_targets is not None:
        target_u, teacher_features = ctx.online_targets(batch.raw_unlabeled, batch.index_unlabeled)
    else:
        target_u = targets.unlabeled(batch.views, batch.index_unlabeled)
        teacher_features = None
    soft = torch.as_tensor(np.concatenate([target_l, target_u]), dtype=logits.dtype, device=logits.device)
    hard = torch.cat([batch.y_labeled, soft[b:].argmax(dim=1)])
    terms = distillation_loss(logits.float(), soft.float(), hard, ctx)
    scale = cfg.kd_weight * (targets.scale(ctx.num_classes) if cfg.reliability else 1.0)
    total = cfg.label_weight * ce + scale * terms["loss"]
    if cfg.self_training:
        # FixMatch's consistency term on top of distillation: the student's own confident
        # predictions on the weak view supervise the strong view, so the student keeps
        # improving past the teachers when its labels and unlabeled data allow.
        with torch.no_grad():
            confidence, pseudo = F.softmax(logits[b:].detach().float(), dim=1).max(dim=1)
            mask = (confidence >= cfg.fixmatch_threshold).float()
        consistency = (F.cross_entropy(logits_all[b + u:], pseudo, reduction="none") * mask).mean()
        total = total + cfg.fixmatch_weight * consistency
        extra_terms["consistency"] = consistency.detach()
    if cfg.feature_weight > 0 and ctx.projectors is not None:
        feature_fn = LOSSES.get(cfg.feature_loss)
        feat_total = torch.zeros((), device=logits.device)
        for name, weight in zip(targets.names, targets.weights):
            if name not in ctx.projectors:
                continue
            if teacher_features is not None:
                tf_u = teacher_features[name]
            else:
                tf_u = _view_features(targets, name, batch.views, batch.index_unlabeled)
            tf = np.concatenate([targets.features[name]["labeled"][batch.index_labeled], tf_u])
            tf_t = torch.as_tensor(tf, dtype=torch.float32, device=logits.device)
            term = feature_fn(features.float(), tf_t, ctx.projectors[name])["loss"]
            feat_total = feat_total + float(weight) * term
        total = total + cfg.feature_weight * feat_total
        extra_terms["feature"] = feat_total.detach()
    return {"loss": total, "ce": ce.detach(), "kd": terms["loss"].detach(), **extra_terms}


def _view_features(targets: TeacherTargets, name: str, views: np.ndarray, index: np.ndarray) -> np.ndarray:
    feats = targets.features[name]
    first = feats["unlabeled"]
    out = np.empty((len(index), first.shape[1]), dtype=np.float32)
    for v in np.unique(views):
        key = "unlabeled" if v == 0 else f"unlabeled@{v}"
        mask = views == v
        out[mask] = feats[key][index[mask]]
    return out


METHODS.register("supervised", Method(supervised_step, summary="labeled data only"))
METHODS.register("finetune", Method(supervised_step, uses_init=True,
                                    summary="generic pretrained student fine-tuned on the labeled data"))
METHODS.register("fixmatch", Method(fixmatch_step, uses_unlabeled=True, uses_strong=True,
                                    summary="FixMatch semi-supervised baseline"))
for _name, _summary in (("nearest", "distill the top-ranked teacher"),
                        ("weighted", "distill the top teachers, weighted by similarity, gated per sample (see mix)"),
                        ("ensemble", "distill the uniform mean of every teacher (ablation)"),
                        ("partition", "distill, per sample, the teacher most confident on it")):
    METHODS.register(_name, Method(distill_step, uses_teachers=True, uses_unlabeled=True, summary=_summary))
