"""Bad inputs raise XDistillError saying what was given, what was expected
and how to fix it, with every problem of a call in one message."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.losses import (
    cka_loss,
    cross_entropy_loss,
    dkd_loss,
    feature_mse_loss,
    kd_loss,
    linear_cka,
    make_projector,
    reverse_kl_loss,
    rkd_loss,
    soft_cross_entropy,
    taid_loss,
    taid_schedule,
)

LOGITS = torch.randn(4, 3)
PROBS = torch.softmax(torch.randn(4, 3), dim=1)
LABELS = torch.tensor([0, 2, 1, 1])


def test_temperature_message_names_value_expectation_and_loss():
    with pytest.raises(XDistillError) as error:
        kd_loss(LOGITS, PROBS, temperature=-1)
    assert str(error.value) == "The 'temperature' of kd_loss must be a float > 0. Got -1."


@pytest.mark.parametrize("temperature", [0, -0.5, math.inf, math.nan, "4", True, None])
def test_temperature_must_be_a_positive_number(temperature):
    with pytest.raises(XDistillError, match="'temperature' of reverse_kl_loss must be a float > 0"):
        reverse_kl_loss(LOGITS, PROBS, temperature=temperature)


@pytest.mark.parametrize(
    "probs, fragment",
    [
        (torch.softmax(torch.randn(3, 3), dim=1), "student's shape [4, 3]. Got [3, 3]"),
        (torch.softmax(torch.randn(4, 5), dim=1), "student's shape [4, 3]. Got [4, 5]"),
        (torch.tensor([[0.5, 0.5, 0.0]] * 3 + [[1.5, -0.5, 0.0]]), "probabilities >= 0. Got negative values in 1 of 4"),
        (torch.tensor([[0.5, 0.5, 0.0]] * 2 + [[math.nan, 0.5, 0.5]] * 2), "must be finite. Got NaN or inf in 2 of 4"),
        (torch.tensor([[0.5, 0.5, 0.5]] * 4), "must sum to 1. Got 4 of 4 rows"),
        (torch.ones(4, 3, dtype=torch.long), "2-D float tensor"),
        ([[1.0, 0.0, 0.0]] * 4, "2-D float tensor"),
    ],
)
def test_teacher_probs_are_checked(probs, fragment):
    with pytest.raises(XDistillError) as error:
        kd_loss(LOGITS, probs)
    assert fragment in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(XDistillError) as error:
        dkd_loss(LOGITS, -PROBS, torch.tensor([0, 1, 2, 3]), alpha=-1, temperature=0, weight=torch.ones(2))
    message = str(error.value)
    assert message.startswith("dkd_loss got invalid inputs (6 problems)")
    for fragment in ("probabilities >= 0", "sum to 1", "'labels'", "'alpha'", "'temperature'", "'weight'"):
        assert fragment in message


@pytest.mark.parametrize(
    "labels, fragment",
    [
        (torch.tensor([0, 1, 2, 3]), "class indices in [0, 2]. Got values from 0 to 3"),
        (torch.tensor([0.0, 1.0, 2.0, 1.0]), "integer tensor of shape [4]"),
        (torch.tensor([0, 1]), "integer tensor of shape [4]"),
    ],
)
def test_labels_are_checked(labels, fragment):
    for call in (lambda: cross_entropy_loss(LOGITS, labels), lambda: dkd_loss(LOGITS, PROBS, labels)):
        with pytest.raises(XDistillError) as error:
            call()
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    "weight, fragment",
    [
        (torch.ones(5), "float tensor of shape [4]"),
        (torch.ones(4, dtype=torch.long), "float tensor of shape [4]"),
        (torch.tensor([1.0, -1.0, 1.0, 1.0]), "finite and >= 0. Got min -1"),
    ],
)
def test_weight_is_checked(weight, fragment):
    with pytest.raises(XDistillError) as error:
        soft_cross_entropy(LOGITS, PROBS, weight=weight)
    assert fragment in str(error.value)
    assert "'weight' of soft_cross_entropy" in str(error.value)


def test_dkd_needs_two_classes():
    with pytest.raises(XDistillError, match="at least 2 classes"):
        dkd_loss(torch.randn(4, 1), torch.ones(4, 1), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("t", [-0.1, 1.5, None])
def test_taid_t_must_be_in_unit_interval(t):
    with pytest.raises(XDistillError, match=r"'t' of taid_loss must be a float in \[0, 1\]"):
        taid_loss(LOGITS, PROBS, t=t)


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ((-1, 10), "'step' of taid_schedule must be an int >= 0"),
        ((1, 0), "'total_steps' of taid_schedule must be an int >= 1"),
        ((1, 10, 1.2), "'start' of taid_schedule must be a float in [0, 1]"),
    ],
)
def test_taid_schedule_is_checked(arguments, fragment):
    with pytest.raises(XDistillError) as error:
        taid_schedule(*arguments)
    assert fragment in str(error.value)


def test_feature_losses_check_rows_and_projector():
    with pytest.raises(XDistillError, match="same number of rows. Got 4 and 3"):
        feature_mse_loss(torch.randn(4, 5), torch.randn(3, 2), make_projector(5, 2))
    with pytest.raises(XDistillError, match=r"Build it with make_projector\(5, 2\)"):
        feature_mse_loss(torch.randn(4, 5), torch.randn(4, 2), nn.Linear(5, 3))
    with pytest.raises(XDistillError, match="must be a torch.nn.Module"):
        feature_mse_loss(torch.randn(4, 5), torch.randn(4, 2), lambda x: x)


@pytest.mark.parametrize("arguments", [(0, 3), (3, 2.5), (3, 3, 0)])
def test_make_projector_checks_widths(arguments):
    with pytest.raises(XDistillError, match="of make_projector must be"):
        make_projector(*arguments)


def test_relation_losses_check_batch_size():
    with pytest.raises(XDistillError, match="rkd_loss needs at least 3 rows"):
        rkd_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(XDistillError, match="cka_loss needs at least 2 rows"):
        cka_loss(torch.randn(1, 3), torch.randn(1, 4))
    with pytest.raises(XDistillError, match="same number of rows"):
        linear_cka(torch.randn(5, 3), torch.randn(4, 3))
    with pytest.raises(XDistillError, match="'angle_weight' of rkd_loss must be a float >= 0"):
        rkd_loss(torch.randn(4, 3), torch.randn(4, 4), angle_weight=-1.0)
