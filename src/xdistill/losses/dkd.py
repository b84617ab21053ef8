"""Decoupled knowledge distillation (Zhao et al. 2022, "Decoupled Knowledge
Distillation", CVPR).

KD's divergence splits per sample into a target-class part and a non-target
part (Zhao et al. 2022, Eq. 7):

    KD = TCKD + (1 - p^T_target) * NCKD

where TCKD is the KL between the binary (target, non-target) distributions of
teacher and student, and NCKD the KL between their distributions over the
non-target classes alone. DKD drops the (1 - p^T_target) coupling and weighs
the parts freely: alpha * TCKD + beta * NCKD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from xdistill.losses.common import (
    batch_mean,
    check_labels,
    check_logits_and_probs,
    check_number,
    check_weight,
    kl_per_sample,
    raise_problems,
    register_loss,
    teacher_log_probs,
)


def check_dkd_inputs(
    student_logits: object, teacher_probs: object, labels: object, alpha: object, beta: object,
    temperature: object, weight: object,
) -> None:
    loss = "dkd_loss"
    problems = check_logits_and_probs(loss, student_logits, teacher_probs)
    if isinstance(student_logits, Tensor) and student_logits.ndim == 2:
        rows, classes = student_logits.shape
        if classes < 2:
            problems.append(
                f"The 'student_logits' of {loss} need at least 2 classes to split target from non-target. "
                f"Got {classes}."
            )
        problems += check_labels(labels, loss, rows, classes) + check_weight(weight, loss, rows)
    problems += check_number(alpha, "alpha", loss, low=0, low_open=False)
    problems += check_number(beta, "beta", loss, low=0, low_open=False)
    problems += check_number(temperature, "temperature", loss, low=0, low_open=True)
    raise_problems(problems, loss)


def binary_log_probs(log_probs: Tensor, is_target: Tensor) -> Tensor:
    """[N,2] log-probabilities of (target, any non-target class) from [N,C].

    The non-target mass is a logsumexp of the non-target log-probabilities,
    not log(1 - p_target), which would round to -inf for a confident model.
    """
    rows = log_probs.shape[0]
    target = log_probs[is_target]
    non_target = torch.logsumexp(log_probs[~is_target].view(rows, -1), dim=1)
    return torch.stack([target, non_target], dim=1)


def non_target_log_probs(logits: Tensor, is_target: Tensor) -> Tensor:
    """[N,C-1] log-probabilities over the non-target classes only, from logits [N,C]."""
    rows = logits.shape[0]
    return F.log_softmax(logits[~is_target].view(rows, -1), dim=1)


@register_loss("dkd", consumes=("student_logits", "teacher_probs", "labels", "temperature"))
def dkd_loss(
    student_logits: Tensor,
    teacher_probs: Tensor,
    labels: Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """Decoupled KD: T^2 * (alpha * TCKD + beta * NCKD), per sample.

    The teacher's logits are log(teacher_probs), so its distributions are the
    re-tempered ones of :func:`xdistill.losses.kd_loss`. With b = (p_target,
    1 - p_target) and p_hat the distribution over the non-target classes:

        TCKD = KL(b^T_teacher || b^T_student)
        NCKD = KL(p_hat^T_teacher || p_hat^T_student)

    Args:
        student_logits: [N, C] student logits, C >= 2.
        teacher_probs: [N, C] teacher probabilities (rows sum to 1).
        labels: [N] integer target classes in [0, C).
        alpha: weight of TCKD, >= 0.
        beta: weight of NCKD, >= 0.
        temperature: T > 0.
        weight: optional [N]; every term = sum_n weight_n * term_n / N.

    Returns:
        {"loss", "tckd", "nckd"}: scalars; "tckd" is the batch mean of
        T^2 * alpha * TCKD and "nckd" of T^2 * beta * NCKD, so they sum to "loss".
    """
    check_dkd_inputs(student_logits, teacher_probs, labels, alpha, beta, temperature, weight)
    is_target = F.one_hot(labels.long(), student_logits.shape[1]).bool()
    student = student_logits / temperature
    teacher = teacher_log_probs(teacher_probs, student_logits) / temperature

    tckd = kl_per_sample(
        binary_log_probs(F.log_softmax(teacher, dim=1), is_target),
        binary_log_probs(F.log_softmax(student, dim=1), is_target),
    )
    nckd = kl_per_sample(non_target_log_probs(teacher, is_target), non_target_log_probs(student, is_target))

    scale = temperature**2
    tckd_term = batch_mean(scale * alpha * tckd, weight)
    nckd_term = batch_mean(scale * beta * nckd, weight)
    return {"loss": tckd_term + nckd_term, "tckd": tckd_term, "nckd": nckd_term}
