"""Same-tokenizer distillation losses on a teacher's cached top-k distribution plus its tail mass.

A cached teacher row is its k most likely next tokens with their log-probabilities and the
log of the mass left over (``xdistill.kinds.language_modeling.topk``). Both distributions are
compared on the same k + 1 bins: the teacher's k ids, and "every other id". The student's bins
are its probabilities of those k ids and one minus their sum; the teacher's are its cached
probabilities and tail mass, renormalised (the cache rounds them to float16).

    forward_kl:  KL(p || q) = sum_b p_b log(p_b / q_b)                    (Hinton et al. 2015, T = 1)
    reverse_kl:  KL(q || p) = sum_b q_b log(q_b / p_b)                    (Gu et al. 2024, MiniLLM)
    taid:        KL(p_t || q), p_t = softmax((1 - t) stopgrad(log q) + t log p)   (Shing et al. 2025)

Shapes: student_logits [N, V], teacher_ids [N, k] int64, teacher_logp [N, k], teacher_tail_logp [N],
optional weight [N]; each returns {"loss": sum_n weight_n * loss_n / N}. With ``normalized=True`` the
student side is given as log-probabilities (its log-softmax), which a step shares with its cross-entropy. Registered in
:data:`TOPK_LOSSES` (a registry of their own: they consume cached top-k rows, not the target-space
probabilities of :data:`xdistill.losses.LOSSES`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from xdistill.errors import XDistillError
from xdistill.losses.common import kl_per_sample
from xdistill.losses.taid import taid_schedule
from xdistill.registry import Registry

TOPK_LOSSES = Registry("token distribution loss")
TAIL_FLOOR = 1e-7  # the student's tail mass is at least this (1 - sum of its top-k probabilities rounds in float32)


def _check(student_logits: Tensor, teacher_ids: Tensor, teacher_logp: Tensor, teacher_tail_logp: Tensor,
           weight: Tensor | None) -> None:
    problems = []
    if student_logits.ndim != 2:
        problems.append(f"student_logits must be [N, V]. Got shape {list(student_logits.shape)}.")
    if teacher_ids.shape != teacher_logp.shape or teacher_ids.ndim != 2:
        problems.append(f"teacher_ids and teacher_logp must both be [N, k]. Got {list(teacher_ids.shape)} and "
                        f"{list(teacher_logp.shape)}.")
    elif student_logits.ndim == 2:
        if teacher_ids.shape[0] != student_logits.shape[0] or teacher_tail_logp.shape != (student_logits.shape[0],):
            problems.append(f"the teacher rows ({teacher_ids.shape[0]}, tail {list(teacher_tail_logp.shape)}) must "
                            f"match the student's {student_logits.shape[0]} rows.")
        if teacher_ids.numel() and (int(teacher_ids.max()) >= student_logits.shape[1] or int(teacher_ids.min()) < 0):
            problems.append(f"teacher_ids must lie in 0..{student_logits.shape[1] - 1} (the student's vocabulary). "
                            "The teacher's tokenizer differs from the student's.")
    if weight is not None and weight.shape != (student_logits.shape[0],):
        problems.append(f"weight must be [N] = [{student_logits.shape[0]}]. Got {list(weight.shape)}.")
    if problems:
        raise XDistillError(" ".join(problems))


def bins(student_logits: Tensor, teacher_ids: Tensor, teacher_logp: Tensor, teacher_tail_logp: Tensor,
         normalized: bool = False) -> tuple[Tensor, Tensor]:
    """(log q [N, k + 1], log p [N, k + 1]): student and teacher log-probabilities on the k ids and the rest.
    ``normalized``: ``student_logits`` are already log-probabilities (a step that also needs the cross-entropy
    computes the log-softmax once and hands it to both)."""
    student_log_probs = student_logits if normalized else F.log_softmax(student_logits, dim=1)
    student_top = student_log_probs.gather(1, teacher_ids)
    student_tail = torch.log((1 - student_top.exp().sum(dim=1)).clamp(min=TAIL_FLOOR))
    log_q = torch.cat([student_top, student_tail[:, None]], dim=1)
    log_p = torch.log_softmax(torch.cat([teacher_logp, teacher_tail_logp[:, None]], dim=1).to(log_q.dtype), dim=1)
    return log_q, log_p


def _mean(per_row: Tensor, weight: Tensor | None) -> Tensor:
    return (per_row if weight is None else per_row * weight).sum() / max(per_row.shape[0], 1)


@TOPK_LOSSES.register("forward_kl")
def topk_forward_kl(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, weight=None,
                    normalized: bool = False) -> dict[str, Tensor]:
    """KL(teacher || student) on the teacher's top k and the tail: the cached form of KD at T = 1."""
    _check(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, weight)
    log_q, log_p = bins(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, normalized)
    return {"loss": _mean(kl_per_sample(log_p, log_q), weight)}


@TOPK_LOSSES.register("reverse_kl")
def topk_reverse_kl(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, weight=None,
                    normalized: bool = False) -> dict[str, Tensor]:
    """KL(student || teacher) on the teacher's top k and the tail: mode-seeking."""
    _check(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, weight)
    log_q, log_p = bins(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, normalized)
    return {"loss": _mean(kl_per_sample(log_q, log_p), weight)}


@TOPK_LOSSES.register("taid")
def topk_taid(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, t: float, weight=None,
              normalized: bool = False) -> dict[str, Tensor]:
    """TAID on the k + 1 bins: KL(p_t || q) towards p_t = softmax((1 - t) stopgrad(log q) + t log p);
    t = 1 is :func:`topk_forward_kl`, t = 0 is 0."""
    _check(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, weight)
    if not 0 <= t <= 1:
        raise XDistillError(f"The 't' of the top-k TAID loss must lie in [0, 1]. Got {t}.")
    log_q, log_p = bins(student_logits, teacher_ids, teacher_logp, teacher_tail_logp, normalized)
    log_target = F.log_softmax((1 - t) * log_q.detach() + t * log_p, dim=1)
    return {"loss": _mean(kl_per_sample(log_target, log_q), weight)}


SCHEDULES = {"taid": {"t": taid_schedule}}


def call_topk_loss(name: str, inputs: dict[str, Tensor], step: int = 0, total_steps: int = 1) -> dict[str, Tensor]:
    """Call the registered top-k loss ``name`` with its scheduled arguments at this step."""
    fn = TOPK_LOSSES.get(name)
    scheduled = {key: schedule(step, total_steps) for key, schedule in SCHEDULES.get(name, {}).items()}
    return fn(**inputs, **scheduled)
