"""``convnet3``: the ConvNet of the dataset-distillation literature (Gidaris & Komodakis 2018,
as used by Zhao et al. 2021 "Dataset Condensation with Gradient Matching" and its successors).

``depth`` blocks of conv3x3 (``width`` channels) - instance norm - ReLU - 2x2 average pooling,
then a linear classifier on the flattened map. Instance norm is GroupNorm with one group per
channel and learned affine parameters, as in the papers' code, so a batch of one image per class
trains the same way as a large batch.
"""

from __future__ import annotations

import torch
from torch import nn

from xdistill.students.build import int_at_least, one_of, raise_problems, register_student

NORMS = ("instance", "batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ConvNet3(nn.Module):
    """``depth`` x (conv3x3 - norm - ReLU - avgpool 2x2) -> flatten -> linear."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int, depth: int, norm: str) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        layers: list[nn.Module] = []
        channels, height, width_px = input_shape
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), _norm(norm, width), nn.ReLU(inplace=True)]
            channels = width
            if min(height, width_px) >= 2:
                layers.append(nn.AvgPool2d(2))
                height, width_px = height // 2, width_px // 2
        self.stages = nn.Sequential(*layers)
        self.feature_dim = width * height * width_px
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, feature_dim] (the flattened last map, width x H/2^depth x W/2^depth)."""
        return self.stages(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.forward_features(x))


@register_student("convnet3", inputs=("image",))
def convnet3(input_shape: tuple[int, ...], num_classes: int, width: int = 128, depth: int = 3,
             norm: str = "instance") -> ConvNet3:
    """The dataset-distillation ConvNet: conv-instance norm-ReLU-avgpool blocks (about 320k parameters on 28x28).

    width: channels of every conv layer (the literature's 128; 16-256).
    depth: conv blocks, each halving the map with 2x2 average pooling (1-4; 3 is ConvNet-3).
    norm: 'instance' (the literature's), 'batch' or 'none'.
    """
    raise_problems("convnet3", int_at_least("width", width, 1) + int_at_least("depth", depth, 1)
                   + one_of("norm", norm, NORMS))
    return ConvNet3(input_shape, num_classes, width=width, depth=depth, norm=norm)
