"""Pieces shared by students: the transformer encoder block (``vit``, ``text-transformer``) and the patch
embedding of image students that read patches (``vit``, ``mixer``).

Attention is written as two explicit matmuls rather than
``F.scaled_dot_product_attention`` because ``FlopCounterMode`` does not count
the fused CPU kernel, and student FLOPs must be comparable across families.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention (Vaswani et al. 2017, eq. 1)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, T, dim], key_padding [N, T] (True = ignore that key) -> [N, T, dim]."""
        n, t, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * (dim // self.heads) ** -0.5
        if key_padding is not None:
            scores = scores.masked_fill(key_padding[:, None, None, :], float("-inf"))
        mixed = scores.softmax(dim=-1) @ v
        return self.proj(mixed.transpose(1, 2).reshape(n, t, dim))


class EncoderBlock(nn.Module):
    """Pre-norm encoder block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), key_padding)
        return x + self.mlp(self.norm2(x))


def patch_grid(height: int, width: int, patch: int) -> tuple[tuple[int, int], int]:
    """((right, bottom) zero padding that makes H and W multiples of ``patch``, the number of patches), so no
    pixel is dropped when ``patch`` does not divide the image."""
    padding = (-width % patch, -height % patch)  # as F.pad orders them
    return padding, ((height + padding[1]) // patch) * ((width + padding[0]) // patch)


def patch_tokens(embed: nn.Module, x: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """x [N, C, H, W], zero-padded by ``padding`` (see :func:`patch_grid`), through the patch embedding
    ``embed`` (a convolution with kernel and stride ``patch``) -> tokens [N, T, D]."""
    if any(padding):
        x = F.pad(x, (0, padding[0], 0, padding[1]))
    return embed(x).flatten(2).transpose(1, 2)
