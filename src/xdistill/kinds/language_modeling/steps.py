"""One optimisation step of a language-model student.

    next_token_step:  cross-entropy of the next token (supervised, finetune)
    distill_step:     kd_weight * <top-k loss to the teachers' cached rows> + label_weight * cross-entropy

``batch`` holds ``ids``, ``targets`` and ``rows`` [B, C] (``data.window_batches``); positions whose
target is a document's BOS (row -1) are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from xdistill.losses.topk import call_topk_loss


@dataclass
class StepContext:
    targets: object = None  # TopKTargets of the teacher(s), rows aligned with the stream
    loss: str = "forward_kl"
    kd_weight: float = 1.0
    label_weight: float = 1.0
    step: int = 0
    total_steps: int = 1


def _scored(model, batch):
    logits = model.token_logits(batch["ids"])
    keep = batch["rows"].reshape(-1) >= 0
    return logits.reshape(-1, logits.shape[-1])[keep], batch["targets"].reshape(-1)[keep], batch["rows"].reshape(-1)[keep]


def next_token_step(model, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
    logits, targets, _ = _scored(model, batch)
    ce = F.cross_entropy(logits, targets)
    return {"loss": ce, "ce": ce.detach()}


def distill_step(model, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
    logits, targets, rows = _scored(model, batch)
    teacher = ctx.targets
    kd = call_topk_loss(ctx.loss, {"student_logits": logits, "teacher_ids": teacher.ids[rows],
                                   "teacher_logp": teacher.logp[rows], "teacher_tail_logp": teacher.tail_logp[rows]},
                        ctx.step, ctx.total_steps)["loss"]
    ce = F.cross_entropy(logits, targets)
    return {"loss": ctx.kd_weight * kd + ctx.label_weight * ce, "kd": kd.detach(), "ce": ce.detach()}
