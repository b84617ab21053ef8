"""``resnet``: a small residual network for images (He et al. 2016, the CIFAR variant's layout)."""

from __future__ import annotations

import torch
from torch import nn

from xdistill.students.build import from_preset, int_at_least, raise_problems, register_student


class BasicBlock(nn.Module):
    """Two conv3x3-BN layers and an identity (or 1x1 projection) shortcut: relu(F(x) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetStudent(nn.Module):
    """A conv3x3 stem, then three stages of ``blocks`` basic blocks with ``width``, 2x and 4x channels, the
    second and third starting with stride 2; global average pooling and a linear head."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int, blocks: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        stages, c_in = [], width
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            layers = [BasicBlock(c_in if b == 0 else c_out, c_out, 2 if (i > 0 and b == 0) else 1)
                      for b in range(blocks)]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 4 * width
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [N, C, H, W] -> (forward_features(x), each stage's feature map [N, C_s, H_s, W_s]), in one pass."""
        x, out = self.stem(x), []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return self.pool(x).flatten(1), out

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [N, C, H, W] -> each stage's feature map [N, C_s, H_s, W_s] (the last one pooled is forward_features)."""
        return self.forward_with_stages(x)[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, feature_dim]."""
        return self.forward_with_stages(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.forward_features(x))


PRESETS = {"small": {"width": 16, "blocks": 1}, "base": {"width": 32, "blocks": 2}}


@register_student("resnet", inputs=("image",), stages=True)
def resnet(input_shape: tuple[int, ...], num_classes: int, size: str = "small", width: int | None = None,
           blocks: int | None = None) -> ResNetStudent:
    """Small ResNet for images: three stages of basic residual blocks (ResNet-8 at size small).

    size: preset of the knobs left unset: 'small' (width 16, blocks 1) or 'base' (width 32, blocks 2).
    width: channels of the stem and the first stage; the others have 2x and 4x (8-64).
    blocks: basic blocks per stage (1-4); depth = 6 x blocks + 2 layers.
    """
    knobs, problems = from_preset(size, PRESETS, width=width, blocks=blocks)
    for knob in ("width", "blocks"):
        problems += int_at_least(knob, knobs.get(knob), 1) if knobs else []
    raise_problems("resnet", problems)
    return ResNetStudent(input_shape, num_classes, **knobs)
