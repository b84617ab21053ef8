"""``mlp`` and ``linear``: students that flatten any float input."""

from __future__ import annotations

import math

import torch
from torch import nn

from xdistill.students.build import int_at_least, raise_problems, register_student


class MLPStudent(nn.Module):
    """Flatten, then ``depth`` Linear-ReLU layers of ``width`` units, then the head."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        sizes = [math.prod(input_shape)] + [width] * depth
        self.body = nn.Sequential(
            nn.Flatten(), *(layer for a, b in zip(sizes[:-1], sizes[1:]) for layer in (nn.Linear(a, b), nn.ReLU()))
        )
        self.feature_dim = width
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, *input_shape] -> [N, width]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, *input_shape] -> logits [N, num_classes]."""
        return self.head(self.forward_features(x))


class LinearStudent(nn.Module):
    """Logistic regression: the flattened input is the feature vector."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.feature_dim = math.prod(input_shape)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, *input_shape] -> [N, prod(input_shape)]."""
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, *input_shape] -> logits [N, num_classes]."""
        return self.head(self.forward_features(x))


@register_student("mlp", inputs=("vector", "image"))
def mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2) -> MLPStudent:
    """Multi-layer perceptron on the flattened input.

    width: units in each hidden layer (32-512).
    depth: hidden layers (1-4).
    """
    raise_problems("mlp", int_at_least("width", width, 1) + int_at_least("depth", depth, 1))
    return MLPStudent(input_shape, num_classes, width=width, depth=depth)


@register_student("linear", inputs=("vector", "image"))
def linear(input_shape: tuple[int, ...], num_classes: int) -> LinearStudent:
    """Logistic regression on the flattened input (no knobs)."""
    return LinearStudent(input_shape, num_classes)
