"""Distillation losses, as plain functions with tensor shapes in their docstrings.

Conventions shared by every loss:

- The teacher side is probabilities over the target classes,
  ``teacher_probs [N, C]`` with rows summing to 1 (teachers' predictions are
  bridged into the target label space and may mix several teachers); the
  student side is logits ``student_logits [N, C]``.
- Every loss returns ``dict[str, Tensor]`` of scalars with the key "loss";
  a loss with parts adds one key per part (e.g. "tckd", "nckd"), already
  weighted so that the parts sum to "loss". Training code logs them by name.
- Per-sample losses take an optional ``weight [N]`` and return
  sum_n weight_n * loss_n / N: normalised by N, not by sum(weight).
- Invalid inputs raise :class:`xdistill.errors.XDistillError` naming every
  problem at once.

Every loss is registered in ``LOSSES`` under a short name (``LOSSES.get("kd")``) with
``register_loss(name, consumes=...)``, declaring the step inputs it consumes
(:data:`STEP_INPUTS`), so training calls any loss through :func:`call_loss`.
Every module of this package is imported with it: a new loss is one more file.
"""

from xdistill.losses.common import LOSSES, STEP_INPUTS, call_loss, losses_consuming, register_loss
from xdistill.losses.dkd import dkd_loss
from xdistill.losses.features import feature_cosine_loss, feature_mse_loss, make_projector
from xdistill.losses.logits import (
    bdkd_loss,
    cross_entropy_loss,
    js_loss,
    kd_loss,
    reverse_kl_loss,
    soft_cross_entropy,
)
from xdistill.losses.nd import nd_loss
from xdistill.losses.relations import cka_loss, linear_cka, rkd_loss
from xdistill.losses.sinkd import sinkd_loss, sinkhorn_loss
from xdistill.losses.taid import taid_loss, taid_schedule
from xdistill.registry import import_submodules

import_submodules(__name__, __path__)  # each module registers its losses

__all__ = [
    "LOSSES",
    "STEP_INPUTS",
    "call_loss",
    "losses_consuming",
    "register_loss",
    "bdkd_loss",
    "cka_loss",
    "cross_entropy_loss",
    "dkd_loss",
    "feature_cosine_loss",
    "feature_mse_loss",
    "js_loss",
    "kd_loss",
    "linear_cka",
    "nd_loss",
    "make_projector",
    "reverse_kl_loss",
    "rkd_loss",
    "sinkd_loss",
    "sinkhorn_loss",
    "soft_cross_entropy",
    "taid_loss",
    "taid_schedule",
]
