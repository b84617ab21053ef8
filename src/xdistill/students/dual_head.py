"""Two heads on one student's features, mixed at prediction (dual-head optimisation).

Kang et al. 2025 ("Simple yet Effective Semi-supervised Knowledge Distillation
from Vision-Language Models via Dual-Head Optimization") train a supervised
head on the labels and a distillation head on the teacher's predictions, both
on one backbone, so the two objectives stop pulling one head two ways, and
predict with the mixture

    p(c | x) = alpha * softmax(h_ce(f))_c + (1 - alpha) * softmax(h_kd(f))_c

``DualHead`` replaces a student's ``head``. In training mode it returns both
heads' logits side by side, ``[N, 2C]`` (supervised first), so a step reaches
each through the student's one forward pass; in eval mode it returns
``log p`` ``[N, C]``, which every consumer of a student (evaluation, export,
``xdistill eval``) reads as logits: their softmax is the mixture. ``alpha`` is
a buffer, saved with the weights; ``student.json`` records ``head: dual`` so
:func:`xdistill.students.io.load_student` rebuilds it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

DUAL_HEAD = "dual"  # the value of 'head' in student.json for a student with a DualHead


class DualHead(nn.Module):
    """A supervised head ``ce`` and a distillation head ``kd`` (both Linear(feature_dim, C)) and their mixing
    weight ``alpha`` in [0, 1] (the supervised head's share)."""

    def __init__(self, ce: nn.Linear, kd: nn.Linear, alpha: float = 0.5) -> None:
        super().__init__()
        self.ce, self.kd = ce, kd
        self.register_buffer("alpha", torch.tensor(float(alpha)))

    @classmethod
    def beside(cls, head: nn.Linear, alpha: float = 0.5) -> DualHead:
        """The student's own head kept as the supervised head, with a fresh distillation head beside it."""
        return cls(head, nn.Linear(head.in_features, head.out_features), alpha)

    @property
    def out_features(self) -> int:
        return self.ce.out_features

    def head_probs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(softmax of the supervised head, softmax of the distillation head), each [N, C], in float32."""
        return torch.softmax(self.ce(features).float(), dim=1), torch.softmax(self.kd(features).float(), dim=1)

    def forward(self, features: Tensor) -> Tensor:
        """features [N, D] -> [N, 2C] both heads' logits (training) or [N, C] log of the mixture (eval)."""
        if self.training:
            return torch.cat([self.ce(features), self.kd(features)], dim=1)
        p_ce, p_kd = self.head_probs(features)
        alpha = self.alpha.float()
        mixture = alpha * p_ce + (1 - alpha) * p_kd
        return mixture.clamp_min(torch.finfo(mixture.dtype).tiny).log()


def mixture_scores(p_ce: np.ndarray, p_kd: np.ndarray, labels: np.ndarray,
                   alphas) -> tuple[list[float], list[float]]:
    """Per mixing weight in ``alphas``, (accuracy, mean NLL) of alpha * p_ce + (1 - alpha) * p_kd ([N, C] each)
    against ``labels [N]``."""
    accuracy, nll = [], []
    rows = np.arange(len(labels))
    for alpha in alphas:
        mixture = alpha * p_ce + (1 - alpha) * p_kd
        accuracy.append(float((mixture.argmax(axis=1) == labels).mean()))
        nll.append(float(-np.log(np.maximum(mixture[rows, labels], 1e-12)).mean()))
    return accuracy, nll
