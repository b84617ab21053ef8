"""Token-level KD over the tokens both vocabularies share: at a position where teacher and student predict the
next token from the same text, the teacher's next-token probabilities of the tokens whose strings (bytes) the
student's vocabulary also holds are mapped to the student's ids, and the student matches them with forward KL
on those bins and one bin for everything else (the teacher's tail and its tokens the student lacks):

    bins b = the mapped ids j_1..j_m, and "rest"
    p_b = teacher probability of b,  p_rest = 1 - sum_j p_j
    q_b = student probability of b,  q_rest = 1 - sum_j q_j
    shared_vocab(p, q) = sum_b p_b log(p_b / q_b)

Shapes: student_log_probs [N, V] (log-softmax of the student at N aligned positions), teacher_ids [N, k]
(student ids of the teacher's k most likely tokens, -1 where the student's vocabulary lacks the token),
teacher_logp [N, k], teacher_tail_logp [N], optional weight [N]; returns {"loss": sum_n weight_n * kl_n / N}.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xdistill.errors import XDistillError
from xdistill.losses.cross_tokenizer import CROSS_TOKENIZER_LOSSES, check_rows, weighted_mean

FLOOR = 1e-7  # the smallest "rest" mass (1 - a sum of probabilities rounds in float32)


@CROSS_TOKENIZER_LOSSES.register("shared_vocab")
def shared_vocab_loss(student_log_probs: Tensor, teacher_ids: Tensor, teacher_logp: Tensor,
                      teacher_tail_logp: Tensor, weight: Tensor | None = None) -> dict[str, Tensor]:
    """Forward KL on the teacher's top-k tokens that the student's vocabulary shares, plus one bin for the rest."""
    check_rows("shared_vocab", student_log_probs=(student_log_probs, 2), teacher_ids=(teacher_ids, 2),
               teacher_logp=(teacher_logp, 2), teacher_tail_logp=(teacher_tail_logp, 1), weight=(weight, 1))
    if teacher_ids.shape != teacher_logp.shape:
        raise XDistillError(f"teacher_ids and teacher_logp of the shared_vocab loss must both be [N, k]. Got "
                            f"{list(teacher_ids.shape)} and {list(teacher_logp.shape)}.")
    shared = teacher_ids >= 0
    dtype = student_log_probs.dtype
    teacher = torch.softmax(torch.cat([teacher_logp, teacher_tail_logp[:, None]], dim=1).to(dtype), dim=1)[:, :-1]
    p = teacher * shared
    p_rest = (1 - p.sum(dim=1)).clamp(min=FLOOR)
    log_q_all = student_log_probs.gather(1, teacher_ids.clamp(min=0))
    q = log_q_all.exp() * shared
    q_rest = (1 - q.sum(dim=1)).clamp(min=FLOOR)
    terms = torch.where(shared & (p > 0), p * (torch.log(p.clamp(min=1e-30)) - log_q_all), torch.zeros_like(p))
    per_row = terms.sum(dim=1) + p_rest * (torch.log(p_rest) - torch.log(q_rest))
    return {"loss": weighted_mean(per_row, weight)}
