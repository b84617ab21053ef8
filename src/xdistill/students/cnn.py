"""``cnn``: a small convolutional student for (C, H, W) images."""

from __future__ import annotations

import torch
from torch import nn

from xdistill.students.build import from_preset, int_at_least, raise_problems, register_student


class CNNStudent(nn.Module):
    """``depth`` conv3x3-BN-ReLU stages, channels doubling from ``width``.

    Every stage but the last ends with a 2x2 max-pool (skipped once the map
    is 1 pixel wide), so the receptive field grows with depth as whole-object
    recognition needs; the adaptive average pool makes the feature size
    independent of H and W, so any H, W works.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        channels = [input_shape[0]] + [width * 2**stage for stage in range(depth)]
        stages = []
        size = min(input_shape[1], input_shape[2])
        for stage, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            layers = [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if stage < depth - 1 and size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = channels[-1]
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, feature_dim]."""
        return self.forward_with_stages(x)[0]

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [N, C, H, W] -> (forward_features(x), each stage's feature map [N, C_s, H_s, W_s]), in one pass."""
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return self.pool(x).flatten(1), out

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [N, C, H, W] -> each stage's feature map [N, C_s, H_s, W_s] (the last one pooled is forward_features)."""
        return self.forward_with_stages(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.forward_features(x))


PRESETS = {"small": {"width": 12, "depth": 3}, "base": {"width": 32, "depth": 4}}


@register_student("cnn", inputs=("image",), stages=True)
def cnn(input_shape: tuple[int, ...], num_classes: int, size: str = "small", width: int | None = None,
        depth: int | None = None) -> CNNStudent:
    """Small conv net for images (about 14k parameters at size small).

    size: preset of the knobs left unset: 'small' (width 12, depth 3) or 'base' (width 32, depth 4).
    width: channels of the first stage, doubled at each later stage (8-64).
    depth: conv stages; each but the last is followed by a 2x2 max-pool (1-4).
    """
    knobs, problems = from_preset(size, PRESETS, width=width, depth=depth)
    if not problems:
        problems = int_at_least("width", knobs["width"], 1) + int_at_least("depth", knobs["depth"], 1)
    raise_problems("cnn", problems)
    return CNNStudent(input_shape, num_classes, **knobs)
