"""What the batch-level Sinkhorn distance and the ND loss do that per-sample losses do not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.losses import kd_loss, nd_loss, sinkd_loss, sinkhorn_loss


def _batch(seed, rows=6, classes=5):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, classes, generator=generator, dtype=torch.float64) * 2
    teacher = torch.softmax(torch.randn(rows, classes, generator=generator, dtype=torch.float64) * 2, dim=1)
    return logits, teacher


def test_sinkhorn_ignores_which_teacher_row_faces_which_student_row():
    # Optimal transport matches the two point clouds as wholes: shuffling the teacher's rows leaves the distance
    # unchanged (to the iterations' rounding), while per-sample KD changes.
    logits, teacher = _batch(0)
    shuffled = teacher[torch.tensor([3, 0, 5, 1, 4, 2])]
    a, b = sinkhorn_loss(logits, teacher)["loss"], sinkhorn_loss(logits, shuffled)["loss"]
    assert a.item() == pytest.approx(b.item(), rel=1e-9)
    assert kd_loss(logits, teacher, 1.0)["loss"].item() != pytest.approx(kd_loss(logits, shuffled, 1.0)["loss"].item())


def test_sinkhorn_distance_shrinks_as_the_student_matches_the_teacher():
    logits, teacher = _batch(1)
    matched = teacher.log()
    far = sinkhorn_loss(logits, teacher, epsilon=0.05, iterations=200)["loss"].item()
    near = sinkhorn_loss(matched, teacher, epsilon=0.05, iterations=200)["loss"].item()
    assert near < 0.1 * far


def test_zero_weight_removes_a_sample_and_scales_by_the_mean_weight():
    logits, teacher = _batch(2)
    weight = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    weighted = sinkhorn_loss(logits, teacher, weight=weight)["loss"].item()
    kept = sinkhorn_loss(logits[:5], teacher[:5])["loss"].item()
    assert weighted == pytest.approx(5 / 6 * kept, rel=1e-9)


def test_sinkd_is_kd_plus_the_weighted_sinkhorn_term():
    logits, teacher = _batch(3)
    terms = sinkd_loss(logits, teacher, temperature=2.0, sinkhorn_weight=0.5)
    assert terms["kd"].item() == pytest.approx(kd_loss(logits, teacher, 2.0)["loss"].item(), rel=1e-12)
    assert terms["sinkhorn"].item() == pytest.approx(
        0.5 * sinkhorn_loss(logits, teacher, temperature=2.0)["loss"].item(), rel=1e-12)


def test_sinkhorn_refuses_bad_settings_all_at_once():
    logits, teacher = _batch(4)
    with pytest.raises(XDistillError) as error:
        sinkhorn_loss(logits, teacher, epsilon=0.0, iterations=0)
    assert "'epsilon'" in str(error.value) and "'iterations'" in str(error.value)


def _identity(width):
    projector = nn.Linear(width, width, bias=False).double()
    with torch.no_grad():
        projector.weight.copy_(torch.eye(width, dtype=torch.float64))
    return projector


def test_nd_rewards_length_along_the_class_direction_up_to_the_teacher_norm():
    means = torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    teacher = torch.tensor([[4.0, 0.0]], dtype=torch.float64)  # ||f_t|| = 4
    labels = torch.tensor([0])

    def nd(student):
        return nd_loss(torch.tensor([student], dtype=torch.float64), teacher, _identity(2), labels, means)["loss"].item()

    assert nd([1.0, 0.0]) == pytest.approx(1 - 1 / 4)  # along e_0 but short: 1 - ||f_s|| / ||f_t||
    assert nd([2.0, 0.0]) == pytest.approx(1 - 2 / 4)  # longer is better
    assert nd([8.0, 0.0]) == pytest.approx(0.0, abs=1e-12)  # at or past the teacher's norm: 1 - cos = 0
    assert nd([0.0, 8.0]) == pytest.approx(1.0)  # orthogonal to its class direction


def test_nd_refuses_class_means_of_another_width():
    with pytest.raises(XDistillError, match="teacher_class_means"):
        nd_loss(torch.ones(2, 2, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64), _identity(2),
                torch.tensor([0, 1]), torch.ones(2, 2, dtype=torch.float64))
