"""The one-step generators' formulas: scores from velocities, the distribution-matching gradient (DMD) and the
score-identity loss (SiD), against values worked out by hand from the papers' formulas, and the class-routed
generator of multi-student."""

from __future__ import annotations

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.kinds.generation.methods.multi_student import class_groups
from xdistill.kinds.generation.one_step import (
    denoised_from_velocity,
    distribution_matching_gradient,
    distribution_matching_loss,
    one_step,
    score_from_velocity,
    score_identity_loss,
)
from xdistill.models.class_routed import ClassRouted
from xdistill.models.denoiser import is_denoiser_folder, load_denoiser, save_denoiser
from xdistill.students import build_student

TINY = {"width": 8, "mults": (1, 2), "blocks": 1, "attention": False}


def test_score_from_the_exact_velocity_of_gaussian_data_is_the_exact_score():
    # x0 ~ N(mu, s^2) per pixel, x_t = (1 - t) x0 + t eps ~ N((1 - t) mu, var), var = (1 - t)^2 s^2 + t^2.
    # The exact velocity E[eps - x0 | x_t] and the exact score -(x_t - (1 - t) mu) / var, written out apart.
    mu, s = 0.3, 0.7
    x_t = torch.tensor([-1.5, -0.2, 0.4, 2.0], dtype=torch.float64).view(4, 1, 1, 1)
    t = torch.tensor([0.1, 0.35, 0.6, 0.95], dtype=torch.float64)
    tt = t.view(-1, 1, 1, 1)
    var = (1 - tt) ** 2 * s ** 2 + tt ** 2
    centred = x_t - (1 - tt) * mu
    expected_eps = tt * centred / var
    expected_x0 = mu + (1 - tt) * s ** 2 * centred / var
    v = expected_eps - expected_x0
    torch.testing.assert_close(score_from_velocity(x_t, t, v), -centred / var, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(denoised_from_velocity(x_t, t, v), expected_x0, rtol=1e-12, atol=1e-12)


def test_distribution_matching_gradient_by_hand():
    # x0_real = x_t - t v_real = [0.0, 0.5]; x0_fake = [-0.2, 0.3]; mean|x - x0_real| = (0.5 + 0.75) / 2 = 0.625;
    # DMD's weighted score difference = (x0_fake - x0_real) / 0.625 = [-0.32, -0.32].
    x = torch.tensor([0.5, -0.25], dtype=torch.float64).view(1, 1, 1, 2)
    x_t = torch.tensor([0.1, 0.3], dtype=torch.float64).view(1, 1, 1, 2)
    t = torch.tensor([0.5], dtype=torch.float64)
    v_real = torch.tensor([0.2, -0.4], dtype=torch.float64).view(1, 1, 1, 2)
    v_fake = torch.tensor([0.6, 0.0], dtype=torch.float64).view(1, 1, 1, 2)
    gradient = distribution_matching_gradient(x, x_t, t, v_real, v_fake)
    torch.testing.assert_close(gradient, torch.full((1, 1, 1, 2), -0.32, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    # the loss carries exactly that gradient (over the number of elements) into x
    x.requires_grad_(True)
    distribution_matching_loss(x, gradient).backward()
    torch.testing.assert_close(x.grad, gradient / 2, rtol=1e-12, atol=1e-12)


def test_matching_scores_give_no_gradient():
    x_t, t, v = torch.randn(3, 1, 4, 4), torch.rand(3) * 0.9 + 0.05, torch.randn(3, 1, 4, 4)
    assert distribution_matching_gradient(torch.randn(3, 1, 4, 4), x_t, t, v, v).abs().max() == 0


def test_score_identity_loss_by_hand():
    # d = f_real - f_fake = [0.2, -0.1]; (1 - 1.2) d^2 + d (f_fake - x_g) = [-0.088, -0.072], mean -0.08;
    # the SiD weight mean|x_g - f_real| = 0.4, so the loss is -0.2 and d loss / d x_g = -d / (2 * 0.4).
    x_g = torch.tensor([0.5, -0.5], dtype=torch.float64).view(1, 1, 1, 2).requires_grad_(True)
    f_real = torch.tensor([0.3, 0.1], dtype=torch.float64).view(1, 1, 1, 2)
    f_fake = torch.tensor([0.1, 0.2], dtype=torch.float64).view(1, 1, 1, 2)
    loss = score_identity_loss(x_g, f_real, f_fake, alpha=1.2)
    torch.testing.assert_close(loss, torch.tensor(-0.2, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    loss.backward()
    torch.testing.assert_close(x_g.grad.flatten(), torch.tensor([-0.25, 0.125], dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)
    # alpha = 1 leaves only the cross term: (f_real - f_fake)^T (f_fake - x_g) = [-0.08, -0.07] -> -0.075 / 0.4
    torch.testing.assert_close(score_identity_loss(x_g.detach(), f_real, f_fake, alpha=1.0),
                               torch.tensor(-0.1875, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_one_step_is_one_euler_step_from_noise():
    torch.manual_seed(0)
    network = build_student("unet", (1, 8, 8), 10, **TINY)
    z, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 3, 9, 10])
    with torch.no_grad():
        expected = z + (0.0 - 1.0) * network.velocity(z, torch.ones(4), y)
        torch.testing.assert_close(one_step(network, z, y), expected, rtol=0, atol=0)


def test_class_groups_are_even_and_cover_every_class():
    assert class_groups(10, 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert class_groups(10, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert class_groups(4, 4) == [[0], [1], [2], [3]]


def test_class_routed_generator_routes_by_label_and_round_trips(tmp_path):
    torch.manual_seed(0)
    members = [build_student("unet", (1, 8, 8), 4, **TINY).eval() for _ in range(2)]
    router = ClassRouted(members, [[0, 1], [2, 3]])
    x, t, y = torch.randn(5, 1, 8, 8), torch.rand(5), torch.tensor([3, 0, 2, 1, 1])
    with torch.no_grad():
        out = router.velocity(x, t, y)
        for row, label in enumerate(y.tolist()):
            member = members[0 if label < 2 else 1]
            torch.testing.assert_close(out[row:row + 1], member.velocity(x[row:row + 1], t[row:row + 1], y[row:row + 1]),
                                       rtol=1e-5, atol=1e-6)  # batch of 1 against a batch of several: float32 sums
    save_denoiser(tmp_path / "routed", router, ["a", "b", "c", "d"], {"steps": 1, "guidance": 1.0})
    assert is_denoiser_folder(tmp_path / "routed")
    assert (tmp_path / "routed" / "members" / "1" / "model.safetensors").is_file()
    loaded, config = load_denoiser(tmp_path / "routed")
    assert config["family"] == "class-routed" and loaded.owned == [[0, 1], [2, 3]]
    with torch.no_grad():
        torch.testing.assert_close(loaded.velocity(x, t, y), out, rtol=0, atol=0)  # same weights, same rows
    with pytest.raises(XDistillError, match="guidance 1"):
        router.velocity(x[:1], t[:1], torch.tensor([4]))  # the null class: no member owns it
