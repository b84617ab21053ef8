"""Cross-tokenizer losses against values computed by hand from their papers' formulas (float64 inputs, so
``rel=1e-9``), and their invariants."""

from __future__ import annotations

import math

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.losses.alm import alm_loss
from xdistill.losses.cross_tokenizer import CROSS_TOKENIZER_LOSSES
from xdistill.losses.shared_vocab import shared_vocab_loss
from xdistill.losses.uld import uld_loss

D = torch.float64


def log(values):
    return torch.tensor(values, dtype=D).log()


def test_registered_names():
    assert set(CROSS_TOKENIZER_LOSSES.names()) == {"alm", "uld", "shared_vocab"}
    with pytest.raises(XDistillError, match="Did you mean 'alm'"):
        CROSS_TOKENIZER_LOSSES.get("almm")


# ALM, binarised KL on chunk likelihoods: p log(p/q) + (1 - p) log((1 - p)/(1 - q)) with p, q raised to 1/tau.
# Chunk 1: p = 0.5, q = 0.25 -> 0.5 ln 2 + 0.5 ln(2/3) = 0.34657359 - 0.20273255 = 0.14384104
# Chunk 2: p = 0.1, q = 0.4  -> 0.1 ln 0.25 + 0.9 ln 1.5 = -0.13862944 + 0.36491860 = 0.22628916
# tau = 2, chunk 1: p~ = 0.70710678, q~ = 0.5 -> 0.70710678 ln 1.41421356 + 0.29289322 ln 0.58578644
#                                               = 0.24506454 - 0.15663930 = 0.08842524
def test_alm_matches_hand_computed_values():
    out = alm_loss(log([0.25, 0.4]), log([0.5, 0.1]))["loss"]
    assert out.item() == pytest.approx((0.14384104 + 0.22628916) / 2, rel=1e-7)
    assert alm_loss(log([0.25]), log([0.5]), temperature=2.0)["loss"].item() == pytest.approx(0.08842524, rel=1e-6)


def test_alm_matches_the_formula_written_out():
    p, q = [0.9, 0.3, 1e-4, 0.999], [0.2, 0.31, 1e-6, 0.5]
    expected = sum(a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b)) for a, b in zip(p, q)) / 4
    assert alm_loss(log(q), log(p))["loss"].item() == pytest.approx(expected, rel=1e-9)


def test_alm_is_zero_when_the_likelihoods_agree_and_weighted_by_row():
    values = log([0.3, 0.01, 0.7])
    assert alm_loss(values, values)["loss"].item() == pytest.approx(0, abs=1e-12)
    weighted = alm_loss(log([0.25, 0.4]), log([0.5, 0.1]), weight=torch.tensor([1.0, 0.0], dtype=D))["loss"]
    assert weighted.item() == pytest.approx(0.14384104 / 2, rel=1e-7)


def test_alm_pulls_the_student_likelihood_towards_the_teachers():
    student = log([0.2, 0.6]).requires_grad_()
    alm_loss(student, log([0.5, 0.3]))["loss"].backward()
    assert student.grad[0] < 0 < student.grad[1]  # raise the first likelihood, lower the second


def test_alm_refuses_a_bad_temperature():
    with pytest.raises(XDistillError, match="'temperature' of the alm loss"):
        alm_loss(log([0.5]), log([0.5]), temperature=0.0)


# ULD: sum_i |p_(i) - q_(i)| over the k largest, plus the difference of the mass left outside them.
# Teacher top 2: 0.5, 0.3 (tail 0.2); student over 4 ids: 0.1, 0.6, 0.2, 0.1 -> sorted 0.6, 0.2 (rest 0.2):
# |0.5 - 0.6| + |0.3 - 0.2| + |0.2 - 0.2| = 0.2
def test_uld_matches_hand_computed_value():
    student = log([[0.1, 0.6, 0.2, 0.1]])
    out = uld_loss(student, log([[0.5, 0.3]]), log([0.2]))["loss"]
    assert out.item() == pytest.approx(0.2, rel=1e-9)


def test_uld_ignores_which_ids_carry_the_probabilities():
    teacher, tail = log([[0.4, 0.3, 0.1]]), log([0.2])
    a = uld_loss(log([[0.05, 0.5, 0.25, 0.2]]), teacher, tail)["loss"]
    b = uld_loss(log([[0.25, 0.2, 0.05, 0.5]]), teacher, tail)["loss"]
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    assert a.item() == pytest.approx(0.1 + 0.05 + 0.1 + abs(0.2 - 0.05), rel=1e-9)


# shared_vocab: teacher top 2 -> student ids [2, unshared], p = 0.5, 0.3 (tail 0.2): bins {2, rest}.
# Student 0.6, 0.2, 0.2: KL = 0.5 ln(0.5/0.2) + 0.5 ln(0.5/0.8) = 0.45814537 - 0.23500181 = 0.22314355
def test_shared_vocab_matches_hand_computed_value():
    out = shared_vocab_loss(log([[0.6, 0.2, 0.2]]), torch.tensor([[2, -1]]), log([[0.5, 0.3]]), log([0.2]))["loss"]
    assert out.item() == pytest.approx(0.22314355, rel=1e-7)
    same = shared_vocab_loss(log([[0.2, 0.3, 0.5]]), torch.tensor([[2, -1]]), log([[0.5, 0.3]]), log([0.2]))["loss"]
    assert same.item() == pytest.approx(0, abs=1e-12)


def test_shared_vocab_with_every_token_shared_is_forward_kl_on_the_bins():
    from xdistill.losses.topk import topk_forward_kl

    student = torch.randn(5, 9, dtype=D).log_softmax(dim=1)
    ids = torch.stack([torch.randperm(9)[:3] for _ in range(5)])
    teacher = torch.randn(5, 9, dtype=D).log_softmax(dim=1)
    top, top_ids = teacher.topk(3, dim=1)
    tail = torch.log(1 - top.exp().sum(dim=1))
    ours = shared_vocab_loss(student, top_ids, top, tail)["loss"]
    reference = topk_forward_kl(student, top_ids, top, tail, normalized=True)["loss"]
    assert ours.item() == pytest.approx(reference.item(), rel=1e-9)
    assert ids.shape == (5, 3)


def test_inconsistent_rows_are_named():
    with pytest.raises(XDistillError, match="same number of rows"):
        uld_loss(log([[0.5, 0.5]]), log([[0.5], [0.5]]), log([0.5, 0.5]))
