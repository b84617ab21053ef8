"""Temporally adaptive interpolated distillation (Shing et al. 2025, "TAID:
Temporally Adaptive Interpolated Distillation for Efficient Knowledge Transfer
in Language Models", ICLR).

The student chases a target that moves from itself towards the teacher as
training goes on, which narrows the capacity gap early in training:

    p_t = softmax((1 - t) * stopgrad(z_s) + t * z_teacher),   loss = KL(p_t || q_s)

with t rising from near 0 to 1. At t = 1 the loss is plain KD.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from xdistill.losses.common import (
    batch_mean,
    check_logits_and_probs,
    check_number,
    check_weight,
    kl_per_sample,
    raise_problems,
    register_loss,
    teacher_log_probs,
)


def taid_schedule(step: int, total_steps: int, start: float = 0.4, end: float = 1.0) -> float:
    """The interpolation t of :func:`taid_loss` at a training step.

    Linear in training progress: t = start + (end - start) * min(step / total_steps, 1),
    so it holds at ``end`` after ``total_steps``. The paper's adaptive update
    (t advanced by a momentum of the loss's relative change) is not
    implemented; the linear schedule is its lower envelope.

    Args:
        step: current optimisation step, >= 0.
        total_steps: steps over which t goes from ``start`` to ``end``, >= 1.
        start: t at step 0, in [0, 1].
        end: t at ``total_steps`` and after, in [0, 1].
    """
    where = "taid_schedule"
    problems = []
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        problems.append(f"The 'step' of {where} must be an int >= 0. Got {step!r}.")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        problems.append(f"The 'total_steps' of {where} must be an int >= 1. Got {total_steps!r}.")
    problems += check_number(start, "start", where, low=0, high=1, low_open=False)
    problems += check_number(end, "end", where, low=0, high=1, low_open=False)
    raise_problems(problems, where)
    return start + (end - start) * min(step / total_steps, 1.0)


@register_loss("taid", consumes=("student_logits", "teacher_probs", "temperature"),
               scheduled={"t": taid_schedule})
def taid_loss(
    student_logits: Tensor,
    teacher_probs: Tensor,
    t: float,
    temperature: float = 1.0,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """TAID: T^2 * KL(p_t || q^T) towards the interpolated target

        p_t = softmax(((1 - t) * stopgrad(z_s) + t * log p) / T),   q^T = softmax(z_s / T)

    The teacher's logits are log(teacher_probs). No gradient flows through the
    target; at t = 0 the loss is 0, at t = 1 it equals
    :func:`xdistill.losses.kd_loss` at the same temperature. The temperature
    (an addition to the paper, which uses T = 1) and the T^2 factor follow KD.

    Args:
        student_logits: [N, C] student logits z_s.
        teacher_probs: [N, C] teacher probabilities (rows sum to 1).
        t: interpolation in [0, 1], usually from :func:`taid_schedule`.
        temperature: T > 0.
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}.
    """
    loss = "taid_loss"
    problems = check_logits_and_probs(loss, student_logits, teacher_probs)
    problems += check_number(t, "t", loss, low=0, high=1, low_open=False)
    problems += check_number(temperature, "temperature", loss, low=0, low_open=True)
    if isinstance(student_logits, Tensor) and student_logits.ndim == 2:
        problems += check_weight(weight, loss, student_logits.shape[0])
    raise_problems(problems, loss)

    student = student_logits / temperature
    teacher = teacher_log_probs(teacher_probs, student_logits) / temperature
    log_target = F.log_softmax((1 - t) * student.detach() + t * teacher, dim=1)
    per_sample = temperature**2 * kl_per_sample(log_target, F.log_softmax(student, dim=1))
    return {"loss": batch_mean(per_sample, weight)}

