"""``vit``: a tiny Vision Transformer student (Dosovitskiy et al. 2021)."""

from __future__ import annotations

import torch
from torch import nn

from xdistill.students.blocks import EncoderBlock, patch_grid, patch_tokens
from xdistill.students.build import (
    dim_divisible_by_heads,
    from_preset,
    int_at_least,
    one_of,
    raise_problems,
    register_student,
)

POOLING = ("cls", "mean")


class ViTStudent(nn.Module):
    """Patch embedding, ``depth`` pre-norm encoder blocks, then a class token or mean pooling.

    When ``patch`` does not divide H or W, images are zero-padded on the right
    and bottom up to the next multiple of ``patch``, so no pixel is dropped.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        pool: str,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        channels, height, width = input_shape
        self.patch = patch
        self.padding, num_patches = patch_grid(height, width, patch)
        self.pool = pool
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        num_tokens = num_patches + (1 if pool == "cls" else 0)
        self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, mlp_ratio=2) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim
        self.head = nn.Linear(dim, num_classes)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        tokens = patch_tokens(self.patch_embed, x, self.padding)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return tokens + self.pos_embed

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, dim]."""
        return self.forward_with_stages(x)[0]

    def forward_with_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [N, C, H, W] -> (forward_features(x), the patch tokens [N, T, dim] after each encoder block, class
        token left out), in one pass."""
        tokens, out = self._embed(x), []
        first = 1 if self.cls_token is not None else 0
        for block in self.blocks:
            tokens = block(tokens)
            out.append(tokens[:, first:])
        tokens = self.norm(tokens)
        return (tokens[:, 0] if self.cls_token is not None else tokens.mean(dim=1)), out

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [N, C, H, W] -> the patch tokens [N, T, dim] after each encoder block (class token left out)."""
        return self.forward_with_stages(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.forward_features(x))


PRESETS = {"small": {"patch": 4, "dim": 32, "depth": 2, "heads": 2},
           "base": {"patch": 4, "dim": 64, "depth": 4, "heads": 4}}


@register_student("vit", inputs=("image",), stages=True)
def vit(
    input_shape: tuple[int, ...],
    num_classes: int,
    size: str = "small",
    patch: int | None = None,
    dim: int | None = None,
    depth: int | None = None,
    heads: int | None = None,
    pool: str = "cls",
) -> ViTStudent:
    """Tiny Vision Transformer over image patches.

    size: preset of the knobs left unset: 'small' (patch 4, dim 32, depth 2, heads 2) or 'base' (dim 64, depth 4, heads 4).
    patch: patch side in pixels; images are zero-padded to a multiple (2-16).
    dim: token width, divisible by heads (16-192).
    depth: encoder blocks (1-6).
    heads: attention heads (1-4).
    pool: 'cls' reads a class token, 'mean' averages the patch tokens.
    """
    knobs, problems = from_preset(size, PRESETS, patch=patch, dim=dim, depth=depth, heads=heads)
    if not problems:
        problems += int_at_least("patch", knobs["patch"], 1) + int_at_least("dim", knobs["dim"], 1)
        problems += int_at_least("depth", knobs["depth"], 1) + int_at_least("heads", knobs["heads"], 1)
    problems += one_of("pool", pool, POOLING)
    if not problems:
        problems += dim_divisible_by_heads(knobs["dim"], knobs["heads"])
    raise_problems("vit", problems)
    return ViTStudent(input_shape, num_classes, pool=pool, **knobs)
