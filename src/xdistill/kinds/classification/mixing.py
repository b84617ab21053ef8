"""The mixing weight of a dual-head student (method ``dho``), chosen on held-out labels.

See :mod:`xdistill.kinds.classification.methods.dho` for the rule and
:mod:`xdistill.students.dual_head` for the heads. Every choice here reads only
the run's per-epoch records, which are checkpointed, so a resumed run chooses
the same weight.
"""

from __future__ import annotations

import numpy as np
import torch

from xdistill.kinds.classification.trust import SMOOTHING_EPOCHS
from xdistill.students.dual_head import DualHead, mixture_scores

ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))  # the supervised head's shares scored on held-out labels
DEFAULT_ALPHA = 0.5  # where no label can be held out
UNINFORMATIVE_ALPHA = 1.0  # teachers at chance level: the supervised head alone


def dual_head_of(student: torch.nn.Module) -> DualHead | None:
    head = getattr(student, "head", None)
    return head if isinstance(head, DualHead) else None


@torch.no_grad()
def held_out_scores(head: DualHead, features: np.ndarray, labels: np.ndarray, device: str) -> dict:
    """Held-out accuracy and NLL of every alpha of ALPHAS, from the student's features [H, D] of held-out labels [H]."""
    p_ce, p_kd = head.head_probs(torch.as_tensor(features, dtype=torch.float32, device=device))
    accuracy, nll = mixture_scores(p_ce.cpu().numpy().astype(np.float64), p_kd.cpu().numpy().astype(np.float64),
                                   labels, ALPHAS)
    return {"alphas": list(ALPHAS), "accuracy": accuracy, "nll": nll}


def chosen_alpha(records: list[dict | None]) -> tuple[float, str]:
    """(alpha, how it was chosen) from the held-out epochs' scores (oldest first; None where none was measured):
    the lowest held-out NLL averaged over the last SMOOTHING_EPOCHS measurements, ties to the better accuracy, then
    the larger alpha. NLL, a proper scoring rule, rather than accuracy first: with two labels a class held out,
    accuracy moves in steps of several points and ties across most alphas."""
    measured = [r for r in records if r][-SMOOTHING_EPOCHS:]
    if not measured:
        return DEFAULT_ALPHA, "default (no held-out measurement)"
    accuracy = np.mean([r["accuracy"] for r in measured], axis=0)
    nll = np.mean([r["nll"] for r in measured], axis=0)
    alphas = measured[-1]["alphas"]
    best = max(range(len(alphas)), key=lambda i: (-round(float(nll[i]), 12), float(accuracy[i]), alphas[i]))
    return float(alphas[best]), f"held-out labels, mean of {len(measured)} epochs"


def set_alpha(head: DualHead, alpha: float) -> None:
    head.alpha.fill_(float(alpha))
