"""Losses between the student's logits and target-class probabilities: the KL
family (forward, reverse, Jensen-Shannon, entropy-balanced) and cross-entropy.

Temperature. The student's distribution at temperature T is
``q^T = softmax(z_s / T)``. The teacher is given as probabilities ``p``, so it is
re-tempered through its log: ``p^T = softmax(log p / T)``, which equals
``softmax(z_t / T)`` for any logits ``z_t`` with ``softmax(z_t) = p``. T > 1
softens both, T < 1 sharpens both. Divergences at temperature T are multiplied
by T^2 so their gradients keep the same scale as T changes (Hinton et al. 2015).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from xdistill.losses.common import (
    batch_mean,
    check_labels,
    check_logits_and_probs,
    check_matrix,
    check_number,
    check_weight,
    kl_per_sample,
    raise_problems,
    register_loss,
    teacher_log_probs,
)


def check_divergence_inputs(
    loss: str, student_logits: object, teacher_probs: object, temperature: object, weight: object
) -> None:
    problems = check_logits_and_probs(loss, student_logits, teacher_probs)
    problems += check_number(temperature, "temperature", loss, low=0, low_open=True)
    if isinstance(student_logits, Tensor) and student_logits.ndim == 2:
        problems += check_weight(weight, loss, student_logits.shape[0])
    raise_problems(problems, loss)


def tempered_log_probs(student_logits: Tensor, teacher_probs: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """(log p^T, log q^T), both [N,C]: the teacher's and the student's
    log-probabilities at ``temperature`` (see the module docstring)."""
    log_p = F.log_softmax(teacher_log_probs(teacher_probs, student_logits) / temperature, dim=1)
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    return log_p, log_q


@register_loss("kd", consumes=("student_logits", "teacher_probs", "temperature"))
def kd_loss(
    student_logits: Tensor, teacher_probs: Tensor, temperature: float = 4.0, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """Knowledge distillation (Hinton et al. 2015): T^2 * KL(p^T || q^T).

    Args:
        student_logits: [N, C] student logits z_s.
        teacher_probs: [N, C] teacher probabilities over the target classes
            (rows sum to 1); re-tempered as softmax(log p / T).
        temperature: T > 0, applied to both sides.
        weight: optional [N] per-sample weights; the loss is
            sum_n weight_n * loss_n / N (normalised by N, not by sum(weight)).

    Returns:
        {"loss": scalar}, the weighted mean over the batch of
        T^2 * sum_c p^T_c (log p^T_c - log q^T_c).
    """
    check_divergence_inputs("kd_loss", student_logits, teacher_probs, temperature, weight)
    log_p, log_q = tempered_log_probs(student_logits, teacher_probs, temperature)
    per_sample = temperature**2 * kl_per_sample(log_p, log_q)
    return {"loss": batch_mean(per_sample, weight)}


@register_loss("reverse_kl", consumes=("student_logits", "teacher_probs", "temperature"))
def reverse_kl_loss(
    student_logits: Tensor, teacher_probs: Tensor, temperature: float = 4.0, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """Reverse KL: T^2 * KL(q^T || p^T), mode-seeking where KD is mass-covering.

    Args:
        student_logits: [N, C] student logits.
        teacher_probs: [N, C] teacher probabilities (rows sum to 1), re-tempered
            as in :func:`kd_loss`. A zero probability counts as the dtype's
            smallest normal number, so the loss stays finite but large where
            the student puts mass on a class the teacher rules out.
        temperature: T > 0.
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}, the weighted batch mean of
        T^2 * sum_c q^T_c (log q^T_c - log p^T_c).
    """
    check_divergence_inputs("reverse_kl_loss", student_logits, teacher_probs, temperature, weight)
    log_p, log_q = tempered_log_probs(student_logits, teacher_probs, temperature)
    per_sample = temperature**2 * kl_per_sample(log_q, log_p)
    return {"loss": batch_mean(per_sample, weight)}


@register_loss("js", consumes=("student_logits", "teacher_probs", "temperature"))
def js_loss(
    student_logits: Tensor, teacher_probs: Tensor, temperature: float = 4.0, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """Jensen-Shannon divergence: T^2 * (KL(p^T || m) + KL(q^T || m)) / 2 with
    m = (p^T + q^T) / 2. Symmetric in p^T and q^T, bounded by T^2 * log 2.

    Args:
        student_logits: [N, C] student logits.
        teacher_probs: [N, C] teacher probabilities (rows sum to 1), re-tempered
            as in :func:`kd_loss`.
        temperature: T > 0.
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}, the weighted batch mean of the per-sample divergence.
    """
    check_divergence_inputs("js_loss", student_logits, teacher_probs, temperature, weight)
    log_p, log_q = tempered_log_probs(student_logits, teacher_probs, temperature)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2)
    per_sample = temperature**2 * 0.5 * (kl_per_sample(log_p, log_m) + kl_per_sample(log_q, log_m))
    return {"loss": batch_mean(per_sample, weight)}


@register_loss("bdkd", consumes=("student_logits", "teacher_probs", "temperature"))
def bdkd_loss(
    student_logits: Tensor, teacher_probs: Tensor, temperature: float = 1.0, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """Entropy-balanced forward and reverse KL, after BD-KD (Amara et al. 2022).

    BD-KD weighs forward and reverse KL per sample by how confident the
    student is relative to the teacher: reverse KL is mode-seeking, so it
    gets more weight where the student is the more uncertain of the two and
    needs sharpening. Here that balance is the normalised entropy share, per
    sample n:

        H_s = -sum_c q^T_c log q^T_c,     H_t = -sum_c p^T_c log p^T_c
        w_rev = H_s / (H_s + H_t),        w_fwd = H_t / (H_s + H_t)
        loss_n = T^2 * (w_fwd * KL(p^T || q^T) + w_rev * KL(q^T || p^T))

    with w_fwd = w_rev = 1/2 where both entropies are 0. The weights are
    computed without gradient: they choose the mix, they are not optimised.

    Args:
        student_logits: [N, C] student logits.
        teacher_probs: [N, C] teacher probabilities (rows sum to 1), re-tempered
            as in :func:`kd_loss`.
        temperature: T > 0.
        weight: optional [N]; every term = sum_n weight_n * term_n / N.

    Returns:
        {"loss", "forward_kl", "reverse_kl"}: scalars, the two weighted parts
        (already multiplied by w_fwd, w_rev and T^2) summing to "loss".
    """
    check_divergence_inputs("bdkd_loss", student_logits, teacher_probs, temperature, weight)
    log_p, log_q = tempered_log_probs(student_logits, teacher_probs, temperature)
    with torch.no_grad():
        student_entropy = -(log_q.exp() * log_q).sum(dim=1)
        teacher_entropy = -(log_p.exp() * log_p).sum(dim=1)
        total = student_entropy + teacher_entropy
        reverse_share = torch.where(total > 0, student_entropy / total, torch.full_like(total, 0.5))
    forward = temperature**2 * (1 - reverse_share) * kl_per_sample(log_p, log_q)
    reverse = temperature**2 * reverse_share * kl_per_sample(log_q, log_p)
    forward_kl, reverse_kl = batch_mean(forward, weight), batch_mean(reverse, weight)
    return {"loss": forward_kl + reverse_kl, "forward_kl": forward_kl, "reverse_kl": reverse_kl}


@register_loss("ce", consumes=("student_logits", "labels"))
def cross_entropy_loss(
    student_logits: Tensor, labels: Tensor, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """Cross-entropy with hard labels: -log softmax(z_s)[label].

    Args:
        student_logits: [N, C] student logits.
        labels: [N] integer class indices in [0, C).
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}.
    """
    loss = "cross_entropy_loss"
    problems = check_matrix(student_logits, "student_logits", loss)
    if not problems:
        rows, classes = student_logits.shape
        problems += check_labels(labels, loss, rows, classes) + check_weight(weight, loss, rows)
    raise_problems(problems, loss)
    per_sample = F.cross_entropy(student_logits, labels.long(), reduction="none")
    return {"loss": batch_mean(per_sample, weight)}


@register_loss("soft_ce", consumes=("student_logits", "target_probs"))
def soft_cross_entropy(
    student_logits: Tensor, target_probs: Tensor, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """Cross-entropy with soft targets: -sum_c p_c log softmax(z_s)_c.

    Equals KL(p || q) plus the entropy of p, so it has the gradient of
    :func:`kd_loss` at T = 1 but does not reach 0 for non-one-hot targets.

    Args:
        student_logits: [N, C] student logits.
        target_probs: [N, C] target probabilities (rows sum to 1).
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}.
    """
    loss = "soft_cross_entropy"
    problems = check_logits_and_probs(loss, student_logits, target_probs, probs_name="target_probs")
    if not problems:
        problems += check_weight(weight, loss, student_logits.shape[0])
    raise_problems(problems, loss)
    per_sample = -(target_probs * F.log_softmax(student_logits, dim=1)).sum(dim=1)
    return {"loss": batch_mean(per_sample, weight)}
