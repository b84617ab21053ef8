"""Knobs change students as documented; bad names, knobs and values get clear errors."""

from __future__ import annotations

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.students import build_student, count_params


def block_params(dim: int) -> int:
    """One pre-norm encoder block, mlp ratio 2: two LayerNorms, qkv, proj, two MLP layers."""
    norms, qkv, proj = 2 * 2 * dim, 3 * dim * dim + 3 * dim, dim * dim + dim
    return norms + qkv + proj + (2 * dim * dim + 2 * dim) + (2 * dim * dim + dim)


def test_cnn_params_follow_width_and_depth():
    def expected(c, width, depth, classes):
        channels = [c] + [width * 2**i for i in range(depth)]
        convs = sum(9 * a * b + 2 * b for a, b in zip(channels[:-1], channels[1:]))  # conv + BN affine
        return convs + channels[-1] * classes + classes

    for width, depth in [(16, 2), (8, 1), (4, 3)]:
        student = build_student("cnn", (3, 28, 28), 10, width=width, depth=depth)
        assert count_params(student) == expected(3, width, depth, 10)
        assert student.feature_dim == width * 2 ** (depth - 1)


def test_default_cnn_is_small():
    assert 5_000 <= count_params(build_student("cnn", (1, 28, 28), 10)) <= 15_000


def test_mlp_params_follow_width_and_depth():
    for width, depth in [(64, 2), (10, 1), (7, 3)]:
        student = build_student("mlp", (2, 3, 4), 5, width=width, depth=depth)
        expected = (24 * width + width) + (depth - 1) * (width * width + width) + (width * 5 + 5)
        assert count_params(student) == expected


def test_linear_is_logistic_regression():
    student = build_student("linear", (20,), 4)
    assert count_params(student) == 20 * 4 + 4
    assert student.feature_dim == 20


def test_each_vit_block_adds_one_block_of_params():
    base = count_params(build_student("vit", (3, 16, 16), 10, depth=2, dim=32))
    deeper = count_params(build_student("vit", (3, 16, 16), 10, depth=3, dim=32))
    assert deeper - base == block_params(32)
    mean_pooled = count_params(build_student("vit", (3, 16, 16), 10, pool="mean"))
    assert base - mean_pooled == 2 * 32  # the class token and its position embedding


def test_vit_pads_images_when_the_patch_does_not_divide_them():
    student = build_student("vit", (1, 10, 10), 3, patch=4)
    assert student.pos_embed.shape[1] == 1 + 3 * 3  # 10 -> 12 pixels -> 3 patches a side
    assert student(torch.randn(2, 1, 10, 10)).shape == (2, 3)


def test_cnn_runs_on_small_images_whatever_the_depth():
    assert build_student("cnn", (1, 8, 8), 3, depth=4)(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_text_cnn_features_follow_channels_and_kernels():
    student = build_student("text-cnn", (12,), 3, vocab_size=50, channels=8, kernel_sizes=(2, 3))
    assert student.feature_dim == 16
    assert student(torch.randint(1, 50, (2, 1))).shape == (2, 3)  # shorter than a kernel


def test_text_transformer_ignores_padding():
    torch.manual_seed(0)
    student = build_student("text-transformer", (12,), 3, vocab_size=50).eval()
    tokens = torch.randint(1, 50, (2, 6))
    padded = torch.cat([tokens, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(student(tokens), student(padded))
    assert torch.isfinite(student(torch.zeros(1, 12, dtype=torch.long))).all()
    deeper = build_student("text-transformer", (12,), 3, vocab_size=50, depth=3)
    assert count_params(deeper) - count_params(student) == block_params(32)


def test_text_transformer_rejects_longer_sequences_than_built_for():
    student = build_student("text-transformer", (4,), 3, vocab_size=50)
    with pytest.raises(XDistillError, match=r"at most 4 tokens\. Got 6"):
        student(torch.ones(1, 6, dtype=torch.long))


def test_unknown_student_suggests_close_names():
    with pytest.raises(XDistillError) as error:
        build_student("cnnn", (1, 28, 28), 10)
    message = str(error.value)
    assert "Unknown student 'cnnn'" in message
    assert "Did you mean 'cnn'" in message
    assert "text-transformer" in message  # the full list


def test_unknown_knob_lists_the_valid_ones():
    with pytest.raises(XDistillError) as error:
        build_student("cnn", (1, 28, 28), 10, widht=8)
    message = str(error.value)
    assert "'widht'" in message
    assert "size='small'" in message and "width=<size preset>" in message and "depth=<size preset>" in message


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(XDistillError) as error:
        build_student("mlp", (20,), 10, width=0, depth=-1)
    message = str(error.value)
    assert "'width' must be an int >= 1. Got 0" in message
    assert "'depth' must be an int >= 1. Got -1" in message


@pytest.mark.parametrize(
    ("name", "shape", "classes", "knobs", "expected"),
    [
        ("vit", (3, 16, 16), 10, {"dim": 30, "heads": 4}, "divisible by 'heads'"),
        ("vit", (3, 16, 16), 10, {"pool": "max"}, "'pool' must be one of 'cls', 'mean'. Got 'max'"),
        ("text-cnn", (12,), 10, {}, "'vocab_size' is required"),
        ("text-cnn", (12,), 10, {"vocab_size": 50, "kernel_sizes": ()}, "'kernel_sizes' must be a non-empty"),
        ("cnn", (784,), 10, {}, r"\(C, H, W\) float images"),
        ("cnn", (1, 28, 28), 1, {}, "num_classes must be an int >= 2. Got 1"),
        ("mlp", (0,), 10, {}, "tuple of ints >= 1"),
    ],
)
def test_invalid_values_name_what_was_given(name, shape, classes, knobs, expected):
    with pytest.raises(XDistillError, match=expected):
        build_student(name, shape, classes, **knobs)
