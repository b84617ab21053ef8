"""Losses between student and teacher features of one sample: the student's
features are mapped to the teacher's width by a learned projector, then
compared by squared error or by direction.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from xdistill.errors import XDistillError
from xdistill.losses.common import batch_mean, check_matrix, check_weight, raise_problems, register_loss


def make_projector(student_dim: int, teacher_dim: int, hidden: int | None = None) -> nn.Module:
    """A learned map from student features [N, student_dim] to [N, teacher_dim].

    A single linear layer, or with ``hidden`` an MLP Linear -> ReLU -> Linear
    with one hidden layer of that width. Train it with the student.
    """
    problems = []
    for name, value in (("student_dim", student_dim), ("teacher_dim", teacher_dim), ("hidden", hidden)):
        if name == "hidden" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            expected = "None or an int >= 1" if name == "hidden" else "an int >= 1"
            problems.append(f"The '{name}' of make_projector must be {expected}. Got {value!r}.")
    raise_problems(problems, "make_projector")
    if hidden is None:
        return nn.Linear(student_dim, teacher_dim)
    return nn.Sequential(nn.Linear(student_dim, hidden), nn.ReLU(), nn.Linear(hidden, teacher_dim))


def project(
    loss: str, student_features: Tensor, teacher_features: Tensor, projector: nn.Module, weight: Tensor | None
) -> Tensor:
    """Check the inputs of a feature loss and return the projected student features [N, Dt]."""
    problems = check_matrix(student_features, "student_features", loss)
    problems += check_matrix(teacher_features, "teacher_features", loss)
    if not isinstance(projector, nn.Module):
        problems.append(
            f"The 'projector' of {loss} must be a torch.nn.Module. Got {type(projector).__name__}. "
            f"Build one with make_projector(student_dim, teacher_dim)."
        )
    if not problems and student_features.shape[0] != teacher_features.shape[0]:
        problems.append(
            f"The 'student_features' and 'teacher_features' of {loss} must have the same number of rows. "
            f"Got {student_features.shape[0]} and {teacher_features.shape[0]}."
        )
    if not problems:
        problems += check_weight(weight, loss, student_features.shape[0])
    raise_problems(problems, loss)

    projected = projector(student_features)
    if projected.shape != teacher_features.shape:
        # a layout projector (xdistill.losses.alignment) knows the layout shape (Df, T, Ds) it was built for
        shape = getattr(projector, "layout_shape", None)
        raise XDistillError(
            f"The 'projector' of {loss} must map student features {list(student_features.shape)} to the "
            f"teacher's shape {list(teacher_features.shape)}. Got {list(projected.shape)}. "
            + (f"Build it with make_layout_projector(kind, {shape}, {teacher_features.shape[1]})." if shape else
               f"Build it with make_projector({student_features.shape[1]}, {teacher_features.shape[1]})."))
    return projected


@register_loss("feature_mse", consumes=("student_features", "teacher_features", "projector"))
def feature_mse_loss(
    student_features: Tensor, teacher_features: Tensor, projector: nn.Module, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """Squared error between projected student and teacher features (FitNets-style).

    Per sample, the mean over the Dt feature dimensions of
    (projector(s) - t)^2, so its scale does not grow with the teacher's width.

    Args:
        student_features: [N, Ds], or for a layout projector the layout [N, Df + T * Ds]
            (:func:`xdistill.losses.alignment.layout`).
        teacher_features: [N, Dt].
        projector: module mapping student_features -> [N, Dt], e.g. :func:`make_projector` or
            :func:`xdistill.losses.alignment.make_layout_projector`.
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}.
    """
    projected = project("feature_mse_loss", student_features, teacher_features, projector, weight)
    per_sample = (projected - teacher_features).pow(2).mean(dim=1)
    return {"loss": batch_mean(per_sample, weight)}


@register_loss("feature_cosine", consumes=("student_features", "teacher_features", "projector"))
def feature_cosine_loss(
    student_features: Tensor, teacher_features: Tensor, projector: nn.Module, weight: Tensor | None = None
) -> dict[str, Tensor]:
    """1 - cosine similarity between projected student and teacher features.

    Matches directions only, so it ignores the teacher's feature scale. Per
    sample in [0, 2]; a zero vector has cosine 0 with everything.

    Args:
        student_features: [N, Ds], or for a layout projector the layout [N, Df + T * Ds]
            (:func:`xdistill.losses.alignment.layout`).
        teacher_features: [N, Dt].
        projector: module mapping student_features -> [N, Dt], e.g. :func:`make_projector` or
            :func:`xdistill.losses.alignment.make_layout_projector`.
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}.
    """
    projected = project("feature_cosine_loss", student_features, teacher_features, projector, weight)
    per_sample = 1 - F.cosine_similarity(projected, teacher_features, dim=1)
    return {"loss": batch_mean(per_sample, weight)}
