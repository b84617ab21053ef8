"""Cross-tokenizer distillation losses: the registry they share and what they have in common.

A teacher whose tokenizer differs from the student's cuts the same text into other tokens. Alignment
(``xdistill.kinds.language_modeling.alignment``) finds the byte offsets where both tokenizations end a token;
between two such offsets lies a *chunk*. Each loss here compares the student with the teacher through the
chunks, in its own way:

    alm:           the chunks' likelihoods                              (losses/alm.py)
    uld:           sorted next-token probabilities at chunk starts       (losses/uld.py)
    shared_vocab:  next-token distributions over the tokens both vocabularies spell alike, at chunk starts
                   (losses/shared_vocab.py)

Registered in :data:`CROSS_TOKENIZER_LOSSES`; each file registers one. Every loss returns
{"loss": sum_n weight_n * loss_n / N} like the other top-k losses (``xdistill.losses.topk``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from xdistill.errors import XDistillError
from xdistill.registry import Registry

CROSS_TOKENIZER_LOSSES = Registry("cross-tokenizer loss")


def weighted_mean(per_row: Tensor, weight: Tensor | None) -> Tensor:
    """sum_n weight_n * per_row_n / N (N the rows; the empty mean is 0)."""
    return (per_row if weight is None else per_row * weight).sum() / max(per_row.shape[0], 1)


def check_rows(name: str, **tensors: tuple[Tensor | None, int]) -> None:
    """Each tensor (value, expected ndim) must exist with that many dims and share its first dim with the others."""
    problems, rows = [], set()
    for key, (value, ndim) in tensors.items():
        if value is None:
            continue
        if value.ndim != ndim:
            problems.append(f"{key} must have {ndim} dimension(s). Got shape {list(value.shape)}.")
        else:
            rows.add(value.shape[0])
    if len(rows) > 1:
        problems.append(f"every input must have the same number of rows. Got {sorted(rows)}.")
    if problems:
        raise XDistillError(f"The inputs of the {name} loss are inconsistent: " + " ".join(problems))


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0, stable near 0 and for very negative x (Maechler 2012)."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))
