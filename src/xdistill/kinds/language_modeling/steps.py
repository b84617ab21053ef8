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

from xdistill.kinds.language_modeling.topk import teacher_token_logp
from xdistill.losses.topk import call_topk_loss


@dataclass
class StepContext:
    targets: object = None  # TopKTargets of the teacher(s), rows aligned with the stream
    loss: str = "forward_kl"
    kd_weight: float = 1.0
    label_weight: float = 1.0
    step: int = 0
    total_steps: int = 1
    gate: bool = False  # distil only the tokens whose actual next token the teachers predict better (trust.py)
    cross_tokenizer_loss: str = "alm"  # teachers with other tokenizers (cross_tokenizer.py)
    alm_temperature: float = 1.0


IGNORE = -100  # the target of a position that is not scored (its target is a document's BOS)


def _log_probs(model, batch):
    """(log-probabilities [N, V] of every position, targets [N] with IGNORE where not scored, scored mask [N]).

    One log-softmax serves the cross-entropy and the distillation loss; masked positions are ignored by
    index and by weight rather than copied out, so a step touches the [N, V] logits as few times as it can."""
    logits = model.token_logits(batch["ids"])
    log_probs = F.log_softmax(logits.reshape(-1, logits.shape[-1]).float(), dim=-1)
    keep = batch["rows"].reshape(-1) >= 0
    targets = torch.where(keep, batch["targets"].reshape(-1), torch.full_like(keep, IGNORE, dtype=torch.long))
    return log_probs, targets, keep


def next_token_step(model, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
    log_probs, targets, _ = _log_probs(model, batch)
    ce = F.nll_loss(log_probs, targets, ignore_index=IGNORE)
    return {"loss": ce, "ce": ce.detach()}


def distill_step(model, batch, ctx: StepContext) -> dict[str, torch.Tensor]:
    log_probs, targets, keep = _log_probs(model, batch)
    rows = batch["rows"].reshape(-1).clamp(min=0)
    teacher = ctx.targets
    ids, logp, tail = teacher.ids[rows], teacher.logp[rows], teacher.tail_logp[rows]
    terms = {}
    scored = keep
    if ctx.gate:  # teachers against the student, per token (trust.py)
        tokens = targets.clamp(min=0)
        with torch.no_grad():
            ahead = teacher_token_logp(ids, logp, tail, tokens, log_probs.shape[1]) > log_probs.gather(
                1, tokens[:, None]).squeeze(1)
        scored = keep & ahead
        terms["teacher_share"] = (scored.sum() / keep.sum().clamp(min=1)).detach()
    weight = scored.to(log_probs.dtype) * (len(keep) / keep.sum().clamp(min=1))  # the mean over scored positions
    kd = call_topk_loss(ctx.loss, {"student_logits": log_probs, "teacher_ids": ids, "teacher_logp": logp,
                                   "teacher_tail_logp": tail, "weight": weight, "normalized": True},
                        ctx.step, ctx.total_steps)["loss"]
    ce = F.nll_loss(log_probs, targets, ignore_index=IGNORE)
    return {"loss": ctx.kd_weight * kd + ctx.label_weight * ce, "kd": kd.detach(), "ce": ce.detach(), **terms}
