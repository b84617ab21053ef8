"""Approximate likelihood matching (ALM; Minixhofer, Vulić and Ponti 2025, "Universal cross-tokenizer
distillation via approximate likelihood matching").

For every chunk (a stretch of text that both tokenizations cut at the same byte offsets on either side) the
teacher's likelihood p = prod of its tokens' probabilities and the student's likelihood q = prod of its tokens'
probabilities are compared as two binary events, "the model produces this chunk" or not, with a binarised
f-divergence of the temperature-scaled likelihoods (the paper's Eq. for L_ALM, f = KL):

    p~ = p^(1/tau),  q~ = q^(1/tau)
    alm(p, q) = p~ log(p~ / q~) + (1 - p~) log((1 - p~) / (1 - q~))

Shapes: student_chunk_logp [M], teacher_chunk_logp [M] (natural-log likelihoods of M chunks), optional
weight [M]; returns {"loss": sum_m weight_m * alm_m / M}.
"""

from __future__ import annotations

from torch import Tensor

from xdistill.errors import XDistillError
from xdistill.losses.cross_tokenizer import CROSS_TOKENIZER_LOSSES, check_rows, log1mexp, weighted_mean


@CROSS_TOKENIZER_LOSSES.register("alm")
def alm_loss(student_chunk_logp: Tensor, teacher_chunk_logp: Tensor, weight: Tensor | None = None,
             temperature: float = 1.0) -> dict[str, Tensor]:
    """Binarised KL between the teacher's and the student's chunk likelihoods (ALM)."""
    check_rows("alm", student_chunk_logp=(student_chunk_logp, 1), teacher_chunk_logp=(teacher_chunk_logp, 1),
               weight=(weight, 1))
    if not temperature > 0:
        raise XDistillError(f"The 'temperature' of the alm loss must be a float > 0. Got {temperature}.")
    log_p = (teacher_chunk_logp.to(student_chunk_logp.dtype) / temperature).clamp(max=0)
    log_q = (student_chunk_logp / temperature).clamp(max=0)
    p = log_p.exp()
    per_chunk = p * (log_p - log_q) + (1 - p) * (log1mexp(log_p) - log1mexp(log_q))
    return {"loss": weighted_mean(per_chunk, weight)}
