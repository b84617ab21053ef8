"""Universal logit distillation (ULD; Boizard et al. 2024, "Towards cross-tokenizer distillation: the universal
logit distillation loss for LLMs"): the closed form of the Wasserstein-1 distance between two next-token
distributions over vocabularies that share no order, sorted and compared rank by rank:

    uld(p, q) = sum_i |p_(i) - q_(i)|          (p_(i): the i-th largest probability)

On a cached teacher row (its k largest probabilities and the mass left over) the sum runs over the k largest
of both sides, plus the difference of what each leaves outside its k largest.

Shapes: student_log_probs [N, V] (log-softmax of the student's logits at N aligned positions),
teacher_logp [N, k] (sorted, highest first), teacher_tail_logp [N], optional weight [N];
returns {"loss": sum_n weight_n * uld_n / N}.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xdistill.losses.cross_tokenizer import CROSS_TOKENIZER_LOSSES, check_rows, weighted_mean


@CROSS_TOKENIZER_LOSSES.register("uld")
def uld_loss(student_log_probs: Tensor, teacher_logp: Tensor, teacher_tail_logp: Tensor,
             weight: Tensor | None = None) -> dict[str, Tensor]:
    """L1 distance between the sorted probabilities of teacher and student (ULD), on the k largest and the rest."""
    check_rows("uld", student_log_probs=(student_log_probs, 2), teacher_logp=(teacher_logp, 2),
               teacher_tail_logp=(teacher_tail_logp, 1), weight=(weight, 1))
    k = min(teacher_logp.shape[1], student_log_probs.shape[1])
    teacher = torch.softmax(torch.cat([teacher_logp[:, :k], teacher_tail_logp[:, None]], dim=1).to(
        student_log_probs.dtype), dim=1)  # renormalised: the cache rounds to float16
    teacher_top = teacher[:, :k].sort(dim=1, descending=True).values
    student_top = student_log_probs.topk(k, dim=1).values.exp()
    per_row = (teacher_top - student_top).abs().sum(dim=1) + (teacher[:, k] - (1 - student_top.sum(dim=1))).abs()
    return {"loss": weighted_mean(per_row, weight)}
