"""Parameter, FLOP and latency counts against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.students import build_student, count_flops, count_params, cpu_latency_ms, describe_students


def test_mlp_flops_are_two_per_multiply_add_of_each_linear_layer():
    student = build_student("mlp", (20,), 5, width=8, depth=3)
    assert count_flops(student, (20,)) == 2 * (20 * 8 + 8 * 8 + 8 * 8 + 8 * 5)


def test_linear_flops():
    assert count_flops(build_student("linear", (3, 4, 4), 7), (3, 4, 4)) == 2 * 48 * 7


def test_cnn_flops_follow_its_strides():
    student = build_student("cnn", (1, 8, 8), 3, width=4, depth=2)
    first = 2 * (1 * 9) * 4 * (8 * 8)  # stride 1 keeps 8x8
    second = 2 * (4 * 9) * 8 * (4 * 4)  # stride 2 halves to 4x4
    assert count_flops(student, (1, 8, 8)) == first + second + 2 * 8 * 3


def test_text_student_flops_use_token_inputs():
    student = build_student("text-cnn", (10,), 2, vocab_size=20, dim=4, channels=3, kernel_sizes=(3,))
    assert count_flops(student, (10,)) == 2 * (4 * 3 * 3) * 8 + 2 * 3 * 2  # 8 output positions


def test_costs_leave_the_training_mode_alone():
    student = build_student("cnn", (1, 8, 8), 3)
    student.stages[0].eval()  # a frozen stage stays frozen
    count_flops(student, (1, 8, 8))
    latency = cpu_latency_ms(student, (1, 8, 8), batch_size=2, repeats=3, warmup=1)
    assert latency > 0
    assert student.training and not student.stages[0].training and student.stages[1].training


def test_latency_rejects_bad_settings():
    with pytest.raises(XDistillError, match="repeats must be an int >= 1. Got 0"):
        cpu_latency_ms(build_student("linear", (4,), 2), (4,), repeats=0)


def test_describe_students_lists_the_families_for_the_input():
    rows = {row["name"]: row for row in describe_students((1, 28, 28), 10)}
    assert set(rows) == {"cnn", "convnet3", "resnet", "vit", "mixer", "mlp", "linear", "unet"}
    assert rows["convnet3"]["params"] == 308_746  # 3 x conv 3x3 (width 128, with bias) + 3 instance norms + 1152 x 10 head
    assert rows["cnn"]["params"] == count_params(build_student("cnn", (1, 28, 28), 10))
    assert rows["mlp"]["flops"] == 2 * (784 * 64 + 64 * 64 + 64 * 10)
    # knobs left to the size preset show as None; their help line names the presets' values
    assert rows["vit"]["knobs"] == {"size": "small", "patch": None, "dim": None, "depth": None, "heads": None,
                                    "pool": "cls"}
    assert "'small' (patch 4, dim 32, depth 2, heads 2)" in rows["vit"]["knob_help"]["size"]
    assert set(rows["vit"]["knob_help"]) == set(rows["vit"]["knobs"])

    text = {row["name"]: row for row in describe_students((16,), 2, vocab_size=100, dim=16)}
    assert set(text) == {"text-cnn", "text-transformer", "gpt"}
    assert text["text-cnn"]["knobs"]["dim"] == 16
    assert {row["name"] for row in describe_students((16,), 2)} == {"mlp", "linear"}


def test_describe_students_rejects_a_knob_no_family_has():
    with pytest.raises(XDistillError, match="'widht'"):
        describe_students((1, 28, 28), 10, widht=8)


def test_describe_students_leaves_the_global_seed_alone():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    describe_students((8,), 2)
    assert torch.equal(torch.rand(1), expected)
