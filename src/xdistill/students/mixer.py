"""``mixer``: a small MLP-Mixer student (Tolstikhin et al. 2021)."""

from __future__ import annotations

import torch
from torch import nn

from xdistill.students.blocks import patch_grid, patch_tokens
from xdistill.students.build import from_preset, int_at_least, raise_problems, register_student


class MixerBlock(nn.Module):
    """Token mixing across patches, then channel mixing per patch, each a pre-norm residual MLP (eqs. 1-2)."""

    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, T, dim] -> [N, T, dim]."""
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MixerStudent(nn.Module):
    """Patch embedding, ``depth`` Mixer blocks, layer norm and global average pooling over patches.

    When ``patch`` does not divide H or W, images are zero-padded on the right and bottom up to the next
    multiple of ``patch`` (as the ``vit`` student does), so no pixel is dropped.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, patch: int, dim: int, depth: int,
                 token_hidden: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        channels, height, width = input_shape
        self.padding, tokens = patch_grid(height, width, patch)
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.blocks = nn.ModuleList(MixerBlock(tokens, dim, token_hidden, 2 * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim
        self.head = nn.Linear(dim, num_classes)

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [N, C, H, W] -> (forward_features(x), the patch tokens [N, T, dim] after each Mixer block)."""
        tokens, out = patch_tokens(self.patch_embed, x, self.padding), []
        for block in self.blocks:
            tokens = block(tokens)
            out.append(tokens)
        return self.norm(tokens).mean(dim=1), out

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [N, C, H, W] -> the patch tokens [N, T, dim] after each Mixer block."""
        return self.forward_with_stages(x)[1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, dim]."""
        return self.forward_with_stages(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.forward_features(x))


PRESETS = {"small": {"patch": 4, "dim": 32, "depth": 2, "token_hidden": 32},
           "base": {"patch": 4, "dim": 64, "depth": 4, "token_hidden": 64}}


@register_student("mixer", inputs=("image",), stages=True)
def mixer(input_shape: tuple[int, ...], num_classes: int, size: str = "small", patch: int | None = None,
          dim: int | None = None, depth: int | None = None, token_hidden: int | None = None) -> MixerStudent:
    """Small MLP-Mixer over image patches: MLPs across patches and across channels, no attention.

    size: preset of the knobs left unset: 'small' (patch 4, dim 32, depth 2, token_hidden 32) or 'base' (dim 64, depth 4, token_hidden 64).
    patch: patch side in pixels; images are zero-padded to a multiple (2-16).
    dim: channels of each patch token (16-256); the channel MLP is 2x as wide.
    depth: Mixer blocks (1-8).
    token_hidden: hidden width of the token-mixing MLP (16-256).
    """
    knobs, problems = from_preset(size, PRESETS, patch=patch, dim=dim, depth=depth, token_hidden=token_hidden)
    for knob in ("patch", "dim", "depth", "token_hidden"):
        problems += int_at_least(knob, knobs.get(knob), 1) if knobs else []
    raise_problems("mixer", problems)
    return MixerStudent(input_shape, num_classes, **knobs)
