"""Losses on the relations between samples of a batch rather than on each
sample: distances and angles (RKD) and representational similarity (CKA).

Both compare the two models' geometry, so student and teacher features may
have different widths and need no projector. Neither takes a per-sample
weight: each is a property of the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from xdistill.losses.common import check_matrix, check_number, raise_problems, register_loss


def check_feature_pair(loss: str, student_features: object, teacher_features: object, min_rows: int) -> list[str]:
    problems = check_matrix(student_features, "student_features", loss, min_rows=min_rows)
    problems += check_matrix(teacher_features, "teacher_features", loss, min_rows=min_rows)
    if not problems and student_features.shape[0] != teacher_features.shape[0]:
        problems.append(
            f"The 'student_features' and 'teacher_features' of {loss} must have the same number of rows. "
            f"Got {student_features.shape[0]} and {teacher_features.shape[0]}."
        )
    return problems


def centred_gram(features: Tensor) -> Tensor:
    """Inner products [N,N] of the rows of ``features`` [N,D] after removing their mean."""
    centred = features - features.mean(dim=0)
    return centred @ centred.T


def distances_from_gram(gram: Tensor) -> Tensor:
    """Euclidean distances [N,N] between the points whose Gram matrix is ``gram``.

    0 on the diagonal; square roots are taken of values clamped above 0 so
    coinciding points give finite (zero) gradients instead of NaN.
    """
    squared_norms = gram.diagonal()
    squared = squared_norms[:, None] + squared_norms[None, :] - 2 * gram
    off_diagonal = ~torch.eye(gram.shape[0], dtype=torch.bool, device=gram.device)
    tiny = torch.finfo(gram.dtype).tiny
    return torch.where(off_diagonal, squared.clamp_min(tiny).sqrt(), torch.zeros_like(gram))


def triplet_cosines(gram: Tensor, distances: Tensor) -> Tensor:
    """cos of the angle at vertex x_j of triangle (x_i, x_j, x_k), as [N,N,N] indexed [i,j,k].

    <x_i - x_j, x_k - x_j> = G_ik - G_ij - G_jk + G_jj, from the Gram matrix,
    which costs N^3 rather than the N^2 * D of explicit difference vectors.
    Entries with i = j or k = j are meaningless and left finite.
    """
    inner = gram[:, None, :] - gram[:, :, None] - gram[None, :, :] + gram.diagonal()[None, :, None]
    safe = torch.where(distances > 0, distances, torch.ones_like(distances))
    return inner / (safe[:, :, None] * safe[None, :, :])


@register_loss("rkd", consumes=("student_features", "teacher_features"))
def rkd_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    distance_weight: float = 25.0,
    angle_weight: float = 50.0,
) -> dict[str, Tensor]:
    """Relational KD (Park et al. 2019, "Relational Knowledge Distillation", CVPR).

    Distance term (Eq. 4-5): with d_ij the euclidean distance between samples
    i and j and mu the mean of d_ij over the N(N-1) ordered pairs i != j,
    psi_ij = d_ij / mu; the term is the mean over those pairs of
    smooth_l1(psi^student_ij - psi^teacher_ij).

    Angle term (Eq. 6-7): psi_ijk = cos of the angle at x_j between x_i and
    x_k; the term is the mean over the N(N-1)(N-2) ordered triplets of
    distinct samples of smooth_l1(psi^student_ijk - psi^teacher_ijk).

    smooth_l1 is the Huber loss with delta = 1. Both terms are invariant to
    translating, rotating or uniformly scaling either set of features.

    Args:
        student_features: [N, Ds], N >= 3.
        teacher_features: [N, Dt].
        distance_weight: weight of the distance term, >= 0.
        angle_weight: weight of the angle term, >= 0.

    Returns:
        {"loss", "distance", "angle"}: scalars; "distance" and "angle" are
        the weighted terms and sum to "loss".
    """
    loss = "rkd_loss"
    problems = check_feature_pair(loss, student_features, teacher_features, min_rows=3)
    problems += check_number(distance_weight, "distance_weight", loss, low=0, low_open=False)
    problems += check_number(angle_weight, "angle_weight", loss, low=0, low_open=False)
    raise_problems(problems, loss)

    rows = student_features.shape[0]
    index = torch.arange(rows, device=student_features.device)
    pairs = index[:, None] != index[None, :]
    triplets = pairs[:, :, None] & pairs[None, :, :] & pairs[:, None, :]

    relations = []
    for features in (student_features, teacher_features):
        gram = centred_gram(features)
        distances = distances_from_gram(gram)
        mean_distance = distances[pairs].mean().clamp_min(torch.finfo(gram.dtype).tiny)
        relations.append((distances[pairs] / mean_distance, triplet_cosines(gram, distances)[triplets]))
    (student_distances, student_angles), (teacher_distances, teacher_angles) = relations

    distance = distance_weight * F.smooth_l1_loss(student_distances, teacher_distances.to(student_distances.dtype))
    angle = angle_weight * F.smooth_l1_loss(student_angles, teacher_angles.to(student_angles.dtype))
    return {"loss": distance + angle, "distance": distance, "angle": angle}


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear centred kernel alignment (Kornblith et al. 2019, Eq. 5), a scalar in [0, 1].

    With X [N,Dx] and Y [N,Dy] centred over the batch,
    CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), computed through the
    N x N Gram matrices (||Y^T X||_F^2 = <XX^T, YY^T>). Invariant to
    orthogonal transforms and isotropic scaling of either input; 0 when
    either is constant over the batch.
    """
    raise_problems(check_feature_pair("linear_cka", x, y, min_rows=2), "linear_cka")
    gram_x, gram_y = centred_gram(x), centred_gram(y.to(x.dtype))
    norms = torch.linalg.matrix_norm(gram_x) * torch.linalg.matrix_norm(gram_y)
    return (gram_x * gram_y).sum() / norms.clamp_min(torch.finfo(x.dtype).tiny)


@register_loss("cka", consumes=("student_features", "teacher_features"))
def cka_loss(student_features: Tensor, teacher_features: Tensor) -> dict[str, Tensor]:
    """1 - linear CKA between student and teacher features (see :func:`linear_cka`).

    Args:
        student_features: [N, Ds], N >= 2.
        teacher_features: [N, Dt].

    Returns:
        {"loss": scalar} in [0, 1], 0 when the representations agree up to
        rotation and scale.
    """
    raise_problems(check_feature_pair("cka_loss", student_features, teacher_features, min_rows=2), "cka_loss")
    return {"loss": 1 - linear_cka(student_features, teacher_features)}
