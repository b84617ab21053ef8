"""A user's own classifier joins through wrap_user_module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.students import count_flops, wrap_user_module


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(16, 6)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv(x)).flatten(1)
        return self.fc2(self.act(self.fc1(x)))


def test_default_features_are_the_input_of_the_last_linear():
    torch.manual_seed(0)
    net = SmallNet()
    student = wrap_user_module(net, (1, 8, 8))
    x = torch.randn(5, 1, 8, 8)
    assert student.feature_dim == 6
    assert student.head is net.fc2
    torch.testing.assert_close(student(x), net(x))
    torch.testing.assert_close(student.forward_features(x), net.act(net.fc1(net.pool(net.conv(x)).flatten(1))))
    torch.testing.assert_close(student.head(student.forward_features(x)), student(x))
    assert count_flops(student, (1, 8, 8)) > 0


def test_a_named_feature_layer_is_hooked():
    student = wrap_user_module(SmallNet(), (1, 8, 8), feature_layer="act")
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(student.head(student.forward_features(x)), student(x))


def test_replacing_the_head_reaches_into_the_wrapped_module():
    net = SmallNet()
    student = wrap_user_module(net, (1, 8, 8))
    student.head = nn.Linear(student.feature_dim, 7)
    x = torch.randn(2, 1, 8, 8)
    assert student(x).shape == (2, 7)
    assert net.fc2.out_features == 7
    torch.testing.assert_close(student.head(student.forward_features(x)), student(x))


def test_a_wrong_path_names_the_available_ones():
    with pytest.raises(XDistillError) as error:
        wrap_user_module(SmallNet(), (1, 8, 8), feature_layer="fc3")
    message = str(error.value)
    assert "'fc3' is not a module path of SmallNet" in message
    assert "Did you mean" in message
    assert "conv, pool, fc1, act, fc2" in message


def test_features_that_do_not_feed_the_head_are_refused():
    with pytest.raises(XDistillError, match="is not head\\(features\\)"):
        wrap_user_module(SmallNet(), (1, 8, 8), feature_layer="fc1")  # before the ReLU
    with pytest.raises(XDistillError, match="have 16 values per sample, but the head 'fc2' reads 6"):
        wrap_user_module(SmallNet(), (1, 8, 8), feature_layer="pool")


def test_a_module_without_a_linear_head_is_refused():
    with pytest.raises(XDistillError, match="has no nn.Linear"):
        wrap_user_module(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), (1, 8, 8))
    with pytest.raises(XDistillError, match="must be an nn.Linear. Got ReLU"):
        wrap_user_module(SmallNet(), (1, 8, 8), head_layer="act")


def test_a_wrong_input_shape_is_reported():
    with pytest.raises(XDistillError, match="failed on a probe batch of shape \\(2, 3, 8, 8\\)"):
        wrap_user_module(SmallNet(), (3, 8, 8))
