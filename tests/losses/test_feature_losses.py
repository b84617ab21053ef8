"""Invariants of the feature and relation losses: CKA's invariances, RKD's
blindness to similarity transforms, and projector training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xdistill.losses import cka_loss, feature_cosine_loss, feature_mse_loss, linear_cka, make_projector, rkd_loss


def features(seed, rows=10, dim=6):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, dim, generator=generator, dtype=torch.float64)


def orthogonal(seed, rows, cols):
    """A [rows, cols] matrix with orthonormal rows (rows <= cols)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(cols, cols, generator=generator, dtype=torch.float64))
    return q[:rows]


def test_cka_is_one_for_identical_features():
    x = features(0)
    assert linear_cka(x, x).item() == pytest.approx(1.0)
    assert cka_loss(x, x)["loss"].item() == pytest.approx(0.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x, y = features(1), features(2, dim=4) + features(1)[:, :4]
    reference = linear_cka(x, y)
    rotated = x @ orthogonal(3, 6, 6)
    torch.testing.assert_close(linear_cka(rotated, y), reference)
    torch.testing.assert_close(linear_cka(7.5 * x, 0.01 * y), reference)
    # Into a wider space: rows of an orthonormal [6, 9] keep inner products.
    torch.testing.assert_close(linear_cka(3 * x @ orthogonal(4, 6, 9) + 5, y), reference)
    assert 0 < reference.item() < 1


def test_cka_tells_related_from_unrelated_features():
    x = features(5, rows=64)
    related = x @ features(6, rows=6, dim=4) + 0.1 * features(7, rows=64, dim=4)
    unrelated = features(8, rows=64, dim=4)
    assert linear_cka(x, related).item() > 0.6 > 0.2 > linear_cka(x, unrelated).item()


def test_cka_is_zero_for_constant_features():
    assert linear_cka(features(9), torch.ones(10, 3, dtype=torch.float64)).item() == 0.0


def test_rkd_is_zero_for_a_scaled_rotation_of_the_teacher():
    teacher = features(10, rows=8, dim=4)
    student = 0.3 * teacher @ orthogonal(11, 4, 7) - 2.0
    terms = rkd_loss(student, teacher)
    for name, value in terms.items():
        assert value.item() == pytest.approx(0.0, abs=1e-10), name


def test_rkd_sees_a_distorted_student():
    teacher = features(12, rows=8, dim=4)
    student = teacher * torch.tensor([1.0, 1.0, 1.0, 5.0], dtype=torch.float64)
    terms = rkd_loss(student, teacher)
    assert terms["distance"].item() > 0 and terms["angle"].item() > 0
    torch.testing.assert_close(terms["loss"], terms["distance"] + terms["angle"])


def test_rkd_gradients_are_finite_for_coinciding_samples():
    student = features(13, rows=5, dim=3)
    student = torch.cat([student, student[:1]]).requires_grad_(True)
    rkd_loss(student, features(14, rows=6, dim=4))["loss"].backward()
    assert torch.isfinite(student.grad).all()


def test_gradcheck_of_relation_losses():
    student = features(15, rows=5, dim=3).requires_grad_(True)
    teacher = features(16, rows=5, dim=4)
    assert torch.autograd.gradcheck(lambda s: rkd_loss(s, teacher)["loss"], (student,))
    assert torch.autograd.gradcheck(lambda s: cka_loss(s, teacher)["loss"], (student,))


@pytest.mark.parametrize("hidden", [None, 16])
def test_make_projector_maps_student_width_to_teacher_width(hidden):
    projector = make_projector(5, 9, hidden=hidden)
    assert isinstance(projector, nn.Linear if hidden is None else nn.Sequential)
    assert projector(torch.randn(3, 5)).shape == (3, 9)


@pytest.mark.parametrize("loss", [feature_mse_loss, feature_cosine_loss], ids=lambda f: f.__name__)
@pytest.mark.parametrize("hidden", [None, 8])
def test_feature_loss_gradients_reach_the_projector_and_student(loss, hidden):
    student = torch.randn(4, 5, requires_grad=True)
    projector = make_projector(5, 3, hidden=hidden)
    loss(student, torch.randn(4, 3), projector)["loss"].backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    for name, parameter in projector.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_feature_losses_are_zero_when_projection_matches_teacher():
    student = features(17, rows=4, dim=3)
    assert feature_mse_loss(student, student.clone(), nn.Identity())["loss"].item() == 0.0
    cosine = feature_cosine_loss(student, 4.0 * student, nn.Identity())["loss"]
    assert cosine.item() == pytest.approx(0.0, abs=1e-12)


def test_feature_mse_averages_over_teacher_dimensions():
    projector = make_projector(3, 8)
    nn.init.zeros_(projector.weight)
    nn.init.zeros_(projector.bias)
    loss = feature_mse_loss(torch.zeros(2, 3), torch.ones(2, 8), projector)["loss"]
    assert loss.item() == pytest.approx(1.0)
