"""Sinkhorn distance between the student's and the teacher's batch of
predictions (Cui et al. 2024, "SinKD: Sinkhorn Distance Minimization for
Knowledge Distillation", IEEE TNNLS).

KL compares each sample's two distributions on its own and is blind to the
geometry between samples. SinKD compares the batch as a whole: the N student
distributions and the N teacher distributions are two point clouds on the
simplex, each point of mass 1/N, and the loss is the entropic optimal
transport cost between them (Cuturi 2013):

    C_ij = sum_c |q_i(c) - p_j(c)|                         (L1 cost, student row i to teacher row j)
    P* = argmin_{P 1 = a, P^T 1 = b} <P, C> - eps H(P)      (Sinkhorn's scaling, a fixed number of iterations)
    sinkhorn = <P*, C>

``sinkhorn`` is that distance alone; ``sinkd`` adds it to KD, as the paper
trains (KL + lambda * Sinkhorn). Both are computed at temperature T (student
softmax(z / T), teacher p^(1/T) renormalised, as in KD); the Sinkhorn term is
a distance between probability vectors, bounded by 2, and takes no T^2 factor.
Gradients flow through the cost and the iterations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from xdistill.losses.common import (
    check_logits_and_probs,
    check_number,
    check_weight,
    raise_problems,
    register_loss,
    teacher_log_probs,
)
from xdistill.losses.logits import kd_loss


def check_sinkhorn_inputs(loss: str, student_logits: object, teacher_probs: object, temperature: object,
                          epsilon: object, iterations: object, weight: object) -> None:
    problems = check_logits_and_probs(loss, student_logits, teacher_probs)
    problems += check_number(temperature, "temperature", loss, low=0, low_open=True)
    problems += check_number(epsilon, "epsilon", loss, low=0, low_open=True)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        problems.append(f"The 'iterations' of {loss} must be an int >= 1. Got {iterations!r}.")
    if isinstance(student_logits, Tensor) and student_logits.ndim == 2:
        problems += check_weight(weight, loss, student_logits.shape[0])
    raise_problems(problems, loss)


def sinkhorn_cost(student_probs: Tensor, teacher_probs: Tensor, epsilon: float, iterations: int,
                  mass: Tensor | None = None) -> Tensor:
    """<P*, C> between the rows of student_probs [N, C] and teacher_probs [N, C] (each row of mass ``mass [N]``,
    summing to 1; uniform when None), with Sinkhorn's scaling run ``iterations`` times from v = 1, in the log
    domain (u = a / (K v), v = b / (K^T u) with K = exp(-C / eps)) so that no kernel entry underflows."""
    cost = torch.cdist(student_probs, teacher_probs, p=1)  # [N, N]
    n = cost.shape[0]
    log_mass = (torch.full((n,), -math.log(n), dtype=cost.dtype, device=cost.device) if mass is None
                else mass.to(cost.dtype).log())
    log_kernel = -cost / epsilon
    log_v = torch.zeros_like(log_mass)
    for _ in range(iterations):
        log_u = log_mass - torch.logsumexp(log_kernel + log_v[None, :], dim=1)
        log_v = log_mass - torch.logsumexp(log_kernel + log_u[:, None], dim=0)
    plan = torch.exp(log_u[:, None] + log_kernel + log_v[None, :])
    return (plan * cost).sum()


def _batch_sinkhorn(student_logits: Tensor, teacher_probs: Tensor, temperature: float, epsilon: float,
                    iterations: int, weight: Tensor | None) -> Tensor:
    """The Sinkhorn term at temperature T. A per-sample weight sets each sample's mass (w_n / sum w), and the
    distance is scaled by mean(w): a weight of 0 removes a sample without raising the others', as for every
    per-sample loss (sum_n w_n l_n / N)."""
    student = F.softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_log_probs(teacher_probs, student_logits) / temperature, dim=1)
    if weight is None:
        return sinkhorn_cost(student, teacher, epsilon, iterations)
    weight = weight.to(student.dtype)
    kept = weight > 0
    if not bool(kept.any()):
        return student.sum() * 0.0
    mass = weight[kept] / weight[kept].sum()
    return weight.mean() * sinkhorn_cost(student[kept], teacher[kept], epsilon, iterations, mass)


@register_loss("sinkhorn", consumes=("student_logits", "teacher_probs", "temperature"))
def sinkhorn_loss(
    student_logits: Tensor,
    teacher_probs: Tensor,
    temperature: float = 1.0,
    epsilon: float = 0.1,
    iterations: int = 30,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """Batch-level Sinkhorn distance between student and teacher predictions, alone.

    Args:
        student_logits: [N, C] student logits.
        teacher_probs: [N, C] teacher probabilities (rows sum to 1).
        temperature: T > 0 applied to both sides, as in KD.
        epsilon: entropic regularisation > 0 (costs lie in [0, 2]; 0.05..0.5).
        iterations: Sinkhorn scaling iterations, >= 1.
        weight: optional [N]; sample n's mass is w_n / sum(w), the distance is scaled by mean(w).

    Returns:
        {"loss": scalar}.
    """
    check_sinkhorn_inputs("sinkhorn_loss", student_logits, teacher_probs, temperature, epsilon, iterations, weight)
    return {"loss": _batch_sinkhorn(student_logits, teacher_probs, temperature, epsilon, iterations, weight)}


@register_loss("sinkd", consumes=("student_logits", "teacher_probs", "temperature"))
def sinkd_loss(
    student_logits: Tensor,
    teacher_probs: Tensor,
    temperature: float = 1.0,
    epsilon: float = 0.1,
    iterations: int = 30,
    sinkhorn_weight: float = 1.0,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """SinKD: KD (T^2 KL per sample) + sinkhorn_weight * the batch's Sinkhorn distance.

    Args:
        student_logits, teacher_probs, temperature, epsilon, iterations, weight: as :func:`sinkhorn_loss`
            (the KD term takes ``weight`` per sample, as :func:`xdistill.losses.kd_loss`).
        sinkhorn_weight: lambda >= 0, the Sinkhorn term's weight.

    Returns:
        {"loss": kd + sinkhorn, "kd": ..., "sinkhorn": ... (already weighted)}.
    """
    loss = "sinkd_loss"
    check_sinkhorn_inputs(loss, student_logits, teacher_probs, temperature, epsilon, iterations, weight)
    raise_problems(check_number(sinkhorn_weight, "sinkhorn_weight", loss, low=0, low_open=False), loss)
    kd = kd_loss(student_logits, teacher_probs, temperature, weight)["loss"]
    sinkhorn = sinkhorn_weight * _batch_sinkhorn(student_logits, teacher_probs, temperature, epsilon, iterations,
                                                 weight)
    return {"loss": kd + sinkhorn, "kd": kd, "sinkhorn": sinkhorn}
