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


STAGED = [(name, kind) for name, kind in CASES if STUDENTS.get(name).stages]


def test_the_image_families_have_stages():
    assert {"cnn", "resnet", "vit", "mixer"} <= {name for name, _ in STAGED}


@pytest.mark.parametrize(("name", "kind"), STAGED, ids=[f"{n}-{k}" for n, k in STAGED])
def test_stages_are_the_intermediate_features_of_the_forward_pass(name, kind):
    from xdistill.students.build import student_stages

    torch.manual_seed(0)
    student = build_default(name, kind).eval()
    x = example_batch(kind)
    stages = student_stages(student, x)
    assert isinstance(stages, list) and len(stages) >= 1
    for feature in stages:
        assert feature.shape[0] == 3 and feature.ndim in (3, 4)  # [N, C, H, W] maps or [N, T, D] tokens
    # The last stage is what the features are computed from: a change to the input that moves it moves them.
    sum(f.sum() for f in stages).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_a_conv_students_last_stage_pooled_is_its_features(name):
    torch.manual_seed(0)
    student = build_default(name, "image").eval()
    x = example_batch("image")
    torch.testing.assert_close(student.forward_stages(x)[-1].mean(dim=(2, 3)), student.forward_features(x))


def test_a_student_without_stages_is_refused_naming_the_ones_with_stages():
    from xdistill.errors import XDistillError
    from xdistill.students.build import student_stages

    student = build_default("mlp", "vector")
    with pytest.raises(XDistillError, match=r"has no stages.*Choose a student with stages: .*cnn.*vit"):
        student_stages(student, example_batch("vector"))


@pytest.mark.parametrize("name", ["cnn", "resnet", "vit", "mixer"])
def test_size_presets_set_the_unset_knobs_and_base_is_larger(name):
    small = build_student(name, SHAPES["image"], NUM_CLASSES)
    base = build_student(name, SHAPES["image"], NUM_CLASSES, size="base")
    assert count_params(base) > 2 * count_params(small)
    knob = {"cnn": "width", "resnet": "width", "vit": "dim", "mixer": "dim"}[name]
    explicit = build_student(name, SHAPES["image"], NUM_CLASSES, size="base", **{knob: 16})
    assert count_params(explicit) < count_params(base)  # a knob given explicitly wins over the preset
    from xdistill.errors import XDistillError

    with pytest.raises(XDistillError, match=r"the knob 'size' must be one of 'small', 'base'. Got 'huge'"):
        build_student(name, SHAPES["image"], NUM_CLASSES, size="huge")


@pytest.mark.parametrize(("name", "kind"), STAGED, ids=[f"{n}-{k}" for n, k in STAGED])
def test_features_with_stages_come_from_one_pass(name, kind):
    torch.manual_seed(0)
    student = build_default(name, kind).eval()
    x = example_batch(kind)
    features, stages = student.forward_with_stages(x)
    torch.testing.assert_close(features, student.forward_features(x))
    for a, b in zip(stages, student.forward_stages(x)):
        torch.testing.assert_close(a, b)
