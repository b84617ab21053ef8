"""Online collaborative distillation of two students of different architectures (the ``collaborative`` method).

Both students see the same batch. Each is trained as ``weighted`` trains one (labels, the teachers' targets,
pseudo-label consistency: :func:`xdistill.kinds.classification.steps.distill_terms`), and each also distills
the other on the samples where the other is the more reliable, as in CNN-Transformer collaborative learning,
where a convolutional and a transformer network teach each other per sample:

    r_s(x) = sum_c t_c(x) log p_s(c | x)          (minus the cross-entropy to t: the one-hot label on labeled
                                                   rows, the teachers' target elsewhere; higher = more reliable)
    peer_A = mean_x [r_B(x) > r_A(x)] * T^2 KL(p_B^T(x) || p_A^T(x)),   p_B held fixed (no gradient)

and symmetrically for B; the total is loss_A + loss_B + peer_weight * (peer_A + peer_B). The run's student is
the primary (config ``student``); the partner (config ``partner``) is trained beside it, checkpointed with the
run, and saved with its own metrics under ``partner/`` in the run folder.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdistill.kinds.classification.steps import Batch, StepContext, distill_terms

PARTNER_FOLDER = "partner"  # the partner student's files and metrics inside the run folder


def default_partner(student: str) -> str:
    """The partner family when config ``partner`` is empty: a transformer beside a CNN, else a CNN."""
    return "vit" if student in ("", "cnn") else "cnn"


class StudentPair(nn.Module):
    """Two students, each seen as a :class:`~xdistill.kinds.classification.steps.FeaturesAndLogits`, run on the
    same input in one module (so a DistributedDataParallel wrapper syncs both): x -> (primary's, partner's)."""

    def __init__(self, primary: nn.Module, partner: nn.Module) -> None:
        super().__init__()
        self.primary = primary
        self.partner = partner

    def forward(self, x: Tensor) -> tuple[tuple, tuple]:
        return self.primary(x), self.partner(x)


class _Computed:
    """Hands :func:`distill_terms` the outputs the pair already computed for the step's views."""

    def __init__(self, outputs: tuple) -> None:
        self.outputs = outputs

    def __call__(self, x: Tensor) -> tuple:
        return self.outputs


def sample_reliability(logits: Tensor, targets: Tensor) -> Tensor:
    """r [N] = sum_c t_c log softmax(logits)_c (minus the cross-entropy) for logits [N, C] and targets [N, C]."""
    return (targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)


def peer_terms(logits_a: Tensor, logits_b: Tensor, targets: Tensor, temperature: float) -> dict[str, Tensor]:
    """Each student's distillation towards the other where the other is the more reliable.

    Args:
        logits_a, logits_b: [N, C] the two students' logits on the same rows.
        targets: [N, C] the reference each is judged against (one-hot labels, or the teachers' targets).
        temperature: T of the softened distributions (the KL is scaled by T^2).

    Returns:
        {"peer_a", "peer_b": the two batch means, "b_teaches_a": the share of rows where B is the more reliable}.
    """
    with torch.no_grad():
        r_a, r_b = sample_reliability(logits_a, targets), sample_reliability(logits_b, targets)
        b_teaches = (r_b > r_a).float()
        a_teaches = (r_a > r_b).float()
    log_a = F.log_softmax(logits_a.float() / temperature, dim=1)
    log_b = F.log_softmax(logits_b.float() / temperature, dim=1)
    kl_a = (log_b.detach().exp() * (log_b.detach() - log_a)).sum(dim=1)  # KL(p_B || p_A) per row
    kl_b = (log_a.detach().exp() * (log_a.detach() - log_b)).sum(dim=1)
    scale = temperature ** 2
    return {"peer_a": scale * (b_teaches * kl_a).mean(), "peer_b": scale * (a_teaches * kl_b).mean(),
            "b_teaches_a": b_teaches.mean()}


def collaborative_step(pair: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor]:
    """One step of both students: each one's distillation terms, then the per-sample peer terms."""
    cfg = ctx.config
    b, u = len(batch.x_labeled), len(batch.x_unlabeled)
    views = [batch.x_labeled, batch.x_unlabeled] + ([batch.x_strong] if cfg.self_training else [])
    primary, partner = pair(torch.cat(views))
    terms = distill_terms(_Computed(primary), batch, ctx, dual=False)
    # The partner has no projectors (they map the primary's features): it learns from the targets and its peer.
    partner_terms = distill_terms(_Computed(partner), batch, dataclasses.replace(ctx, projectors=None), dual=False)
    onehot = F.one_hot(batch.y_labeled, ctx.num_classes).float()
    teachers = torch.as_tensor(ctx.targets.unlabeled(batch.views, batch.index_unlabeled), dtype=torch.float32,
                               device=onehot.device)
    peers = peer_terms(primary[1][:b + u], partner[1][:b + u], torch.cat([onehot, teachers]), cfg.kd_temperature)
    peer = peers["peer_a"] + peers["peer_b"]
    total = terms["loss"] + partner_terms["loss"] + cfg.peer_weight * peer
    logged = {k: v for k, v in terms.items() if k != "loss"}
    logged.update({f"partner_{k}": v for k, v in partner_terms.items() if k in ("ce", "kd")})
    return {"loss": total, **logged, "peer": peer.detach(), "peer_to_student": peers["peer_a"].detach(),
            "peer_to_partner": peers["peer_b"].detach(), "partner_teaches": peers["b_teaches_a"]}


__all__ = ["PARTNER_FOLDER", "StudentPair", "collaborative_step", "default_partner", "peer_terms",
           "sample_reliability"]
