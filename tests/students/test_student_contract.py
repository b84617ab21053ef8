"""Every registered student honours the interface documented in xdistill.students."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xdistill.students import STUDENTS, build_student, count_flops, count_params

NUM_CLASSES = 5
VOCAB_SIZE = 30
SHAPES = {"image": (1, 16, 16), "vector": (20,), "tokens": (9,)}


def example_batch(kind: str, batch_size: int = 3) -> torch.Tensor:
    shape = (batch_size, *SHAPES[kind])
    if kind == "tokens":
        tokens = torch.randint(1, VOCAB_SIZE, shape)
        tokens[0, -3:] = 0  # trailing padding in one row
        return tokens
    return torch.randn(shape)


def build_default(name: str, kind: str) -> nn.Module:
    knobs = {"vocab_size": VOCAB_SIZE} if kind == "tokens" else {}
    return build_student(name, SHAPES[kind], NUM_CLASSES, **knobs)


CASES = [(name, kind) for name, family in STUDENTS.items() for kind in family.inputs]


def test_every_family_is_covered():
    assert {"cnn", "mlp", "linear", "vit", "text-cnn", "text-transformer"} <= set(STUDENTS.names())


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_student_contract(name, kind):
    torch.manual_seed(0)
    student = build_default(name, kind)
    x = example_batch(kind)

    logits = student(x)
    features = student.forward_features(x)
    assert logits.shape == (3, NUM_CLASSES)
    assert features.shape == (3, student.feature_dim)
    assert isinstance(student.head, nn.Linear)
    assert student.input_shape == SHAPES[kind]
    torch.testing.assert_close(student.head(features), logits)

    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    unused = [name for name, p in student.named_parameters() if p.grad is None]
    assert not unused
    assert all(torch.isfinite(p.grad).all() for p in student.parameters())
    assert sum(p.grad.abs().sum() for p in student.parameters()) > 0

    assert count_params(student) > 0
    assert count_flops(student, SHAPES[kind]) > 0


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_replacing_the_head_moves_the_student_to_a_new_label_space(name, kind):
    student = build_default(name, kind)
    student.head = nn.Linear(student.feature_dim, 3)
    x = example_batch(kind)
    logits = student(x)
    assert logits.shape == (3, 3)
    torch.testing.assert_close(student.head(student.forward_features(x)), logits)


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_same_seed_builds_the_same_student(name, kind):
    torch.manual_seed(7)
    first = build_default(name, kind)
    torch.manual_seed(7)
    second = build_default(name, kind)
    torch.manual_seed(8)
    third = build_default(name, kind)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value)
    weights = [k for k, v in first.state_dict().items() if v.is_floating_point() and v.numel() > 1]
    assert any(not torch.equal(first.state_dict()[k], third.state_dict()[k]) for k in weights)
    x = example_batch(kind)
    first.eval()
    second.eval()
    torch.testing.assert_close(first(x), second(x))
