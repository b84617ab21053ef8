"""One-for-All KD's adaptive target enhancement (Hao et al. 2023, "One-for-All: Bridge the Gap Between
Heterogeneous Architectures in Knowledge Distillation", NeurIPS, eq. 5).

Each of the student's predictions (its exit branches after intermediate stages, and its final head) is
trained on the teacher's target-space distribution p with the target class's weight raised:

    L_OFA(q, p, y) = - sum_c [(p_c + 1[c = y])^gamma - 1[c = y]] log q_c

With gamma = 1 this is cross-entropy to p; gamma > 1 raises the weight of the target class the more
confident the teacher is, which the paper finds closes the gap between teacher and student
architectures. The loss of a batch is the sum over the final head and every exit of the batch mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from xdistill.losses.common import (
    batch_mean,
    check_labels,
    check_logits_and_probs,
    check_number,
    check_weight,
    raise_problems,
    register_loss,
)

OFA_GAMMA = 1.5  # the modulating exponent (the paper uses 1.0-1.6 depending on the pair of architectures)


def ofa_term(logits: Tensor, teacher_probs: Tensor, labels: Tensor, gamma: float, weight: Tensor | None) -> Tensor:
    """The batch mean of L_OFA for logits [N, C] against teacher_probs [N, C] and labels [N]."""
    onehot = F.one_hot(labels.long(), logits.shape[1]).to(teacher_probs.dtype)
    target = (teacher_probs + onehot) ** gamma - onehot
    per_sample = -(target * F.log_softmax(logits.to(teacher_probs.dtype), dim=1)).sum(dim=1)
    return batch_mean(per_sample, weight)


@register_loss("ofa", consumes=("student_logits", "teacher_probs", "labels", "exit_logits"))
def ofa_loss(
    student_logits: Tensor,
    teacher_probs: Tensor,
    labels: Tensor,
    exit_logits: Sequence[Tensor] = (),
    gamma: float = OFA_GAMMA,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """OFA's loss on the final logits and on every exit branch's logits.

    Args:
        student_logits: [N, C] the student's final logits.
        teacher_probs: [N, C] teacher probabilities over the target classes.
        labels: [N] the target class of each row (the label, or the teachers' argmax on unlabeled rows).
        exit_logits: S tensors [N, C], the exit branches' logits (empty for a student trained without exits).
        gamma: the modulating exponent, >= 1.
        weight: optional [N]; every term = sum_n weight_n * term_n / N.

    Returns:
        {"loss", "final", "exits"}: "final" on the student's head, "exits" the sum over its exit branches.
    """
    where = "ofa_loss"
    problems = check_logits_and_probs(where, student_logits, teacher_probs)
    if not problems:
        problems += check_labels(labels, where, student_logits.shape[0], student_logits.shape[1])
        problems += check_weight(weight, where, student_logits.shape[0])
        problems += [f"The 'exit_logits' of {where} must be tensors of shape {list(student_logits.shape)}. "
                     f"Got {list(e.shape)}." for e in exit_logits if e.shape != student_logits.shape]
    problems += check_number(gamma, "gamma", where, low=1, low_open=False)
    raise_problems(problems, where)
    final = ofa_term(student_logits, teacher_probs, labels, gamma, weight)
    exits = sum((ofa_term(e, teacher_probs, labels, gamma, weight) for e in exit_logits),
                torch.zeros((), dtype=final.dtype, device=final.device))
    return {"loss": final + exits, "final": final, "exits": exits}
