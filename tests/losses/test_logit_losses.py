"""Invariants of the logit losses: zero at a match, non-negative, blind to
class order and to logit offsets, the DKD decomposition, TAID's stop-gradient,
BD-KD's balance, per-sample weights, and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from xdistill.losses import (
    bdkd_loss,
    cross_entropy_loss,
    dkd_loss,
    js_loss,
    kd_loss,
    reverse_kl_loss,
    soft_cross_entropy,
    taid_loss,
    taid_schedule,
)

DIVERGENCES = [kd_loss, reverse_kl_loss, js_loss, bdkd_loss]
TEMPERATURES = [0.5, 1.0, 4.0]


def random_inputs(seed, rows=6, classes=5):
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(rows, classes, generator=generator, dtype=torch.float64)
    probs = torch.softmax(3 * torch.randn(rows, classes, generator=generator, dtype=torch.float64), dim=1)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    return logits, probs, labels


# Every logit loss as f(student_logits, teacher_probs, labels, temperature, weight) -> terms.
LOGIT_LOSSES = {
    "kd": lambda z, p, y, T, w=None: kd_loss(z, p, temperature=T, weight=w),
    "reverse_kl": lambda z, p, y, T, w=None: reverse_kl_loss(z, p, temperature=T, weight=w),
    "js": lambda z, p, y, T, w=None: js_loss(z, p, temperature=T, weight=w),
    "bdkd": lambda z, p, y, T, w=None: bdkd_loss(z, p, temperature=T, weight=w),
    "dkd": lambda z, p, y, T, w=None: dkd_loss(z, p, y, alpha=1.5, beta=3.0, temperature=T, weight=w),
    "taid": lambda z, p, y, T, w=None: taid_loss(z, p, t=0.7, temperature=T, weight=w),
    "soft_ce": lambda z, p, y, T, w=None: soft_cross_entropy(z, p, weight=w),
    "ce": lambda z, p, y, T, w=None: cross_entropy_loss(z, y, weight=w),
}


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("loss", DIVERGENCES, ids=lambda f: f.__name__)
def test_divergence_is_zero_when_student_matches_retempered_teacher(loss, temperature):
    _, probs, _ = random_inputs(0)
    # softmax((log p + c) / T) = softmax(log p / T), the re-tempered teacher.
    logits = probs.log() + torch.randn(probs.shape[0], 1, dtype=torch.float64)
    assert loss(logits, probs, temperature=temperature)["loss"].item() == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("loss", ["kd", "reverse_kl", "js", "bdkd", "dkd", "taid"])
def test_divergence_is_positive_away_from_a_match(loss):
    for seed in range(5):
        logits, probs, labels = random_inputs(seed)
        for temperature in TEMPERATURES:
            assert LOGIT_LOSSES[loss](logits, probs, labels, temperature)["loss"].item() > 0


@pytest.mark.parametrize("loss", sorted(LOGIT_LOSSES))
def test_invariant_to_renaming_classes(loss):
    logits, probs, labels = random_inputs(1)
    order = torch.randperm(logits.shape[1], generator=torch.Generator().manual_seed(3))
    renamed_labels = torch.argsort(order)[labels]
    assert torch.equal(logits[:, order][torch.arange(6), renamed_labels], logits[torch.arange(6), labels])
    for temperature in TEMPERATURES:
        original = LOGIT_LOSSES[loss](logits, probs, labels, temperature)
        renamed = LOGIT_LOSSES[loss](logits[:, order], probs[:, order], renamed_labels, temperature)
        for name in original:
            torch.testing.assert_close(renamed[name], original[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", sorted(LOGIT_LOSSES))
def test_invariant_to_adding_a_constant_to_student_logits(loss):
    logits, probs, labels = random_inputs(2)
    shifted = logits + 10 * torch.randn(logits.shape[0], 1, dtype=torch.float64)
    for temperature in TEMPERATURES:
        original = LOGIT_LOSSES[loss](logits, probs, labels, temperature)
        moved = LOGIT_LOSSES[loss](shifted, probs, labels, temperature)
        for name in original:
            torch.testing.assert_close(moved[name], original[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_js_is_symmetric_and_bounded(temperature):
    first, _, _ = random_inputs(3)
    second, _, _ = random_inputs(4)
    # Teacher softmax(z) re-tempered is softmax(z / T), so swapping logits swaps sides.
    forward = js_loss(first, torch.softmax(second, dim=1), temperature=temperature)["loss"]
    backward = js_loss(second, torch.softmax(first, dim=1), temperature=temperature)["loss"]
    torch.testing.assert_close(forward, backward, rtol=1e-10, atol=1e-12)
    assert forward.item() <= temperature**2 * math.log(2)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_kd_is_tckd_plus_coupled_nckd(temperature):
    """Zhao et al. 2022, Eq. 7: KD = TCKD + (1 - p^T_target) * NCKD, per sample."""
    logits, probs, labels = random_inputs(5)
    for row in range(logits.shape[0]):
        z, p, y = logits[row : row + 1], probs[row : row + 1], labels[row : row + 1]
        terms = dkd_loss(z, p, y, alpha=1.0, beta=1.0, temperature=temperature)
        tckd, nckd = terms["tckd"] / temperature**2, terms["nckd"] / temperature**2
        teacher_target = torch.softmax(p.log() / temperature, dim=1)[0, y[0]]
        kd = kd_loss(z, p, temperature=temperature)["loss"] / temperature**2
        torch.testing.assert_close(kd, tckd + (1 - teacher_target) * nckd, rtol=1e-9, atol=1e-12)


def test_dkd_weights_scale_their_terms():
    logits, probs, labels = random_inputs(6)
    unit = dkd_loss(logits, probs, labels, alpha=1.0, beta=1.0)
    weighted = dkd_loss(logits, probs, labels, alpha=0.5, beta=8.0)
    torch.testing.assert_close(weighted["tckd"], 0.5 * unit["tckd"])
    torch.testing.assert_close(weighted["nckd"], 8.0 * unit["nckd"])


def test_dkd_stays_finite_for_a_confident_float32_teacher():
    logits = torch.randn(4, 10)
    probs = torch.softmax(torch.randn(4, 10) * 40, dim=1)
    labels = probs.argmax(dim=1)
    terms = dkd_loss(logits, probs, labels)
    assert all(torch.isfinite(value) for value in terms.values())


def test_taid_at_the_ends_of_its_schedule():
    logits, probs, _ = random_inputs(7)
    for temperature in TEMPERATURES:
        assert taid_loss(logits, probs, t=0.0, temperature=temperature)["loss"].item() == pytest.approx(0, abs=1e-12)
        torch.testing.assert_close(
            taid_loss(logits, probs, t=1.0, temperature=temperature)["loss"],
            kd_loss(logits, probs, temperature=temperature)["loss"],
        )


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_taid_gradient_treats_the_target_as_constant(temperature):
    logits, probs, _ = random_inputs(8)
    logits.requires_grad_(True)
    t = 0.3
    taid_loss(logits, probs, t=t, temperature=temperature)["loss"].backward()
    with torch.no_grad():
        target = torch.softmax(((1 - t) * logits + t * probs.log()) / temperature, dim=1)
        student = torch.softmax(logits / temperature, dim=1)
        # d/dz of T^2 * KL(target || softmax(z / T)) / N with the target held fixed.
        expected = temperature * (student - target) / logits.shape[0]
    torch.testing.assert_close(logits.grad, expected)


def test_taid_schedule_is_linear_then_holds():
    assert taid_schedule(0, 100) == pytest.approx(0.4)
    assert taid_schedule(50, 100) == pytest.approx(0.7)
    assert taid_schedule(100, 100) == pytest.approx(1.0)
    assert taid_schedule(500, 100) == pytest.approx(1.0)
    assert taid_schedule(25, 100, start=0.0, end=0.8) == pytest.approx(0.2)
    steps = [taid_schedule(step, 40, start=0.1, end=0.9) for step in range(60)]
    assert steps == sorted(steps)


def bdkd_reverse_share(student_logits, teacher_probs, temperature=1.0):
    """w_rev of one sample, read back from bdkd_loss's terms."""
    terms = bdkd_loss(student_logits, teacher_probs, temperature=temperature)
    reverse = reverse_kl_loss(student_logits, teacher_probs, temperature=temperature)["loss"]
    forward = kd_loss(student_logits, teacher_probs, temperature=temperature)["loss"]
    return (terms["reverse_kl"] / reverse).item(), (terms["forward_kl"] / forward).item()


def test_bdkd_leans_on_reverse_kl_when_the_student_is_less_certain():
    confident = torch.softmax(torch.tensor([[6.0, 0.0, 0.0, 0.0]], dtype=torch.float64), dim=1)
    hesitant_logits = torch.tensor([[0.5, 0.0, 0.2, 0.1]], dtype=torch.float64)
    reverse_share, forward_share = bdkd_reverse_share(hesitant_logits, confident)
    assert reverse_share > 0.5 > forward_share
    assert reverse_share + forward_share == pytest.approx(1)

    hesitant = torch.softmax(hesitant_logits, dim=1)
    confident_logits = torch.tensor([[6.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    reverse_share, forward_share = bdkd_reverse_share(confident_logits, hesitant)
    assert forward_share > 0.5 > reverse_share


def test_bdkd_gradient_holds_the_balance_fixed():
    logits, probs, _ = random_inputs(9, rows=1)
    reverse_share, forward_share = bdkd_reverse_share(logits, probs, temperature=2.0)
    gradient = {}
    for name, loss in (("bdkd", bdkd_loss), ("kd", kd_loss), ("reverse_kl", reverse_kl_loss)):
        leaf = logits.clone().requires_grad_(True)
        loss(leaf, probs, temperature=2.0)["loss"].backward()
        gradient[name] = leaf.grad
    torch.testing.assert_close(
        gradient["bdkd"], forward_share * gradient["kd"] + reverse_share * gradient["reverse_kl"]
    )


@pytest.mark.parametrize("loss", sorted(LOGIT_LOSSES))
def test_weight_is_normalised_by_batch_size(loss):
    logits, probs, labels = random_inputs(10)
    rows = logits.shape[0]
    ones = torch.ones(rows, dtype=torch.float64)
    only_second = torch.zeros(rows, dtype=torch.float64)
    only_second[1] = 1.0
    function = LOGIT_LOSSES[loss]

    plain = function(logits, probs, labels, 2.0)
    alone = function(logits[1:2], probs[1:2], labels[1:2], 2.0)
    for name, value in plain.items():
        torch.testing.assert_close(function(logits, probs, labels, 2.0, ones)[name], value)
        torch.testing.assert_close(function(logits, probs, labels, 2.0, 2 * ones)[name], 2 * value)
        torch.testing.assert_close(function(logits, probs, labels, 2.0, only_second)[name], alone[name] / rows)


# BD-KD's balance and TAID's target are held constant by design, so finite
# differences (which see them move) cannot agree; their gradients are checked
# in closed form above.
@pytest.mark.parametrize("loss", sorted(set(LOGIT_LOSSES) - {"bdkd", "taid"}))
def test_gradcheck(loss):
    logits, probs, labels = random_inputs(11, rows=3, classes=4)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: LOGIT_LOSSES[loss](z, probs, labels, 2.0)["loss"], (logits,))


def test_teacher_zero_probabilities_keep_losses_and_gradients_finite():
    logits = torch.randn(3, 4, requires_grad=True)
    probs = torch.tensor([[0.0, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    labels = torch.tensor([1, 2, 0])
    for name in LOGIT_LOSSES:
        logits.grad = None
        value = LOGIT_LOSSES[name](logits, probs, labels, 2.0)["loss"]
        value.backward()
        assert torch.isfinite(value), name
        assert torch.isfinite(logits.grad).all(), name
