"""Feature norm and direction (Wang et al. 2023, "Improving Knowledge
Distillation via Regularizing Feature Norm and Direction", the ND loss).

A student's embedding classifies well when it points along its class's
direction and is long. The ND loss takes the direction from the teacher: the
mean teacher feature of class c, e_c = mu_c / ||mu_c||, and pulls the
student's embedding (projected to the teacher's width, f_s) along it, with a
projection that keeps growing until the embedding is as long as the longer
of the two:

    ND = 1 - <f_s, e_y> / max(||f_s||, ||f_t||)

where y is the sample's class (its label, or its target's argmax on
unlabeled samples) and f_t the teacher's own feature of the sample. While
||f_s|| < ||f_t|| the loss falls with the projection's length (a larger
norm); beyond it, it is 1 - cos(f_s, e_y) (the direction).

The class means come from the cached teacher features (see
:func:`xdistill.kinds.classification.targets.teacher_class_means`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xdistill.losses.common import batch_mean, check_labels, check_matrix, raise_problems, register_loss
from xdistill.losses.features import project


@register_loss("nd", consumes=("student_features", "teacher_features", "projector", "labels",
                               "teacher_class_means"))
def nd_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    projector: nn.Module,
    labels: Tensor,
    teacher_class_means: Tensor,
    weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """ND loss: mean over samples of 1 - <P(s_n), e_{y_n}> / max(||P(s_n)||, ||t_n||).

    Args:
        student_features: [N, Ds] student embeddings s_n.
        teacher_features: [N, Dt] the teacher's features t_n of the same samples.
        projector: module mapping [N, Ds] -> [N, Dt] (P).
        labels: [N] the class y_n of each sample.
        teacher_class_means: [C, Dt] the teacher's mean feature of each class (mu_c; e_c = mu_c / ||mu_c||).
        weight: optional [N]; loss = sum_n weight_n * loss_n / N.

    Returns:
        {"loss": scalar}.
    """
    loss = "nd_loss"
    problems = check_matrix(teacher_class_means, "teacher_class_means", loss, min_rows=2)
    if not problems and isinstance(teacher_features, Tensor) and teacher_features.ndim == 2 \
            and teacher_class_means.shape[1] != teacher_features.shape[1]:
        problems.append(f"The 'teacher_class_means' of {loss} must have the teacher features' width "
                        f"{teacher_features.shape[1]}. Got shape {list(teacher_class_means.shape)}.")
    if not problems and isinstance(student_features, Tensor) and student_features.ndim >= 2:
        problems += check_labels(labels, loss, student_features.shape[0], teacher_class_means.shape[0])
    raise_problems(problems, loss)
    projected = project(loss, student_features, teacher_features, projector, weight)
    means = teacher_class_means.to(projected.dtype)
    directions = means / means.norm(dim=1, keepdim=True).clamp_min(torch.finfo(means.dtype).tiny)
    along = (projected * directions[labels]).sum(dim=1)
    longer = torch.maximum(projected.norm(dim=1), teacher_features.to(projected.dtype).norm(dim=1))
    per_sample = 1.0 - along / longer.clamp_min(torch.finfo(projected.dtype).tiny)
    return {"loss": batch_mean(per_sample, weight)}
