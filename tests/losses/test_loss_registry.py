"""Every registered loss honours the common contract: a dict of scalar terms
with "loss", parts that sum to it, and gradients that reach the student."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.losses import LOSSES

from .cases import random_case, torch_arguments

EXPECTED = [
    "bdkd", "ce", "cka", "dkd", "feature_cosine", "feature_mse",
    "js", "kd", "nd", "ofa", "reverse_kl", "rkd", "sinkd", "sinkhorn", "soft_ce", "taid",
]  # fmt: skip


def test_all_losses_are_registered():
    assert LOSSES.names() == EXPECTED


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(XDistillError) as error:
        LOSSES.get("kd_los")
    assert "Did you mean 'kd'" in str(error.value)
    assert "Available: bdkd, ce, cka" in str(error.value)


@pytest.mark.parametrize("name", EXPECTED)
def test_loss_contract(name):
    case = random_case(name, np.random.default_rng(0))
    arguments = torch_arguments(case, requires_grad=True)
    terms = LOSSES.get(name)(**arguments, **case["params"])

    assert isinstance(terms, dict) and "loss" in terms
    for term, value in terms.items():
        assert isinstance(value, torch.Tensor) and value.ndim == 0 and torch.isfinite(value), term
    parts = [value for term, value in terms.items() if term != "loss"]
    if parts:
        torch.testing.assert_close(sum(parts), terms["loss"])

    terms["loss"].backward()
    student = arguments.get("student_logits", arguments.get("student_features"))
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
