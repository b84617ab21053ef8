"""Projectors from a student's last stage, in its own layout, to a teacher's pooled features.

A cached teacher feature is one vector per sample [N, Dt], whatever the teacher's architecture; a student's
last stage is a feature map [N, C, H, W] (convolutional students) or a token sequence [N, T, D] (transformer
and mixer students). Both are read as tokens (a map's H*W positions become tokens of width C, and a square
token sequence can be laid back out as a map), preceded by the student's pooled features as one more token
(:func:`layout_tokens`: what the student's head reads, beside where it came from), then mapped to the
teacher's width:

- ``pool``: layer norm over each token, the mean over the tokens, a linear layer to Dt;
- ``attention``: learned queries cross-attend over the normalised tokens (with a learned position embedding),
  in the spirit of ScaleKD's cross-attention feature alignment (Fan et al. 2024): each query gathers what the
  teacher's feature needs from wherever it lies in the student's layout, and the queries' outputs are
  concatenated and mapped linearly to Dt.

    out = Linear(concat_q softmax(Q_q K^T / sqrt(d_h)) V), K = X W_k, V = X W_v, X = LN(tokens) + P

per head of width d_h. Feature losses call the projector on the stage's output as they would call a linear
projector on pooled features (:func:`xdistill.losses.features.project`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from xdistill.errors import XDistillError

ATTENTION_QUERIES = 4  # learned queries of the attention projector
ATTENTION_WIDTH = 64  # width of its keys, values and queries
ATTENTION_HEADS = 4  # heads splitting that width


def as_tokens(stage: Tensor) -> Tensor:
    """A stage's output as tokens: [N, C, H, W] -> [N, H*W, C] (row-major positions); [N, T, D] unchanged."""
    if stage.dim() == 4:
        return stage.flatten(2).transpose(1, 2)
    if stage.dim() == 3:
        return stage
    raise XDistillError(f"A student stage must be a feature map [N, C, H, W] or tokens [N, T, D]. "
                        f"Got shape {list(stage.shape)}.")


def as_feature_map(tokens: Tensor) -> Tensor:
    """Tokens [N, T, D] laid back out as a feature map [N, D, h, w] (T = h * w, the most square grid, row-major:
    the inverse of :func:`as_tokens` on a map)."""
    n, t, d = tokens.shape
    h = max(k for k in range(1, math.isqrt(t) + 1) if t % k == 0)
    return tokens.transpose(1, 2).reshape(n, d, h, t // h)


def layout_tokens(features: Tensor, stage: Tensor) -> Tensor:
    """What a layout projector reads: the student's pooled features [N, D] as a first token, then its last stage
    as tokens -> [N, 1 + T, D]. The pooled features are what the student's head reads (a ViT's class token, a
    CNN's pooled map); the stage's tokens say where it came from. A stage of another width than the features
    gives its tokens alone."""
    tokens = as_tokens(stage)
    if features.shape[-1] != tokens.shape[-1]:
        return tokens
    return torch.cat([features[:, None, :].to(tokens.dtype), tokens], dim=1)


def layout_shape(stage_shape: tuple[int, ...], feature_dim: int) -> tuple[int, int]:
    """One sample's shape (T', D) of :func:`layout_tokens` for a stage of ``stage_shape`` and features of
    ``feature_dim``."""
    tokens, dim = token_shape(stage_shape)
    return (tokens + 1, dim) if dim == feature_dim else (tokens, dim)


def token_shape(stage_shape: tuple[int, ...]) -> tuple[int, int]:
    """(tokens T, width D) of one sample's stage output of shape (C, H, W) or (T, D)."""
    if len(stage_shape) == 3:
        return stage_shape[1] * stage_shape[2], stage_shape[0]
    if len(stage_shape) == 2:
        return stage_shape[0], stage_shape[1]
    raise XDistillError(f"A student stage must be a feature map (C, H, W) or tokens (T, D) per sample. "
                        f"Got {list(stage_shape)}.")


class PoolProjector(nn.Module):
    """Stage output -> tokens [N, T, D] -> layer norm -> mean over tokens -> Linear -> [N, Dt]."""

    def __init__(self, dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, teacher_dim)

    def forward(self, stage: Tensor) -> Tensor:
        return self.linear(self.norm(as_tokens(stage)).mean(dim=1))


class AttentionProjector(nn.Module):
    """Stage output -> tokens [N, T, D] -> ``queries`` learned queries cross-attending over them -> [N, Dt]."""

    def __init__(self, tokens: int, dim: int, teacher_dim: int, queries: int = ATTENTION_QUERIES,
                 width: int = ATTENTION_WIDTH, heads: int = ATTENTION_HEADS) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"The attention projector's width ({width}) must be divisible by its heads ({heads}).")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.queries = nn.Parameter(torch.randn(queries, width) * 0.02)
        self.key = nn.Linear(dim, width)
        self.value = nn.Linear(dim, width)
        self.out = nn.Linear(queries * width, teacher_dim)

    def forward(self, stage: Tensor) -> Tensor:
        x = self.norm(as_tokens(stage)) + self.position
        k, v = self._split(self.key(x)), self._split(self.value(x))
        q = self.queries.reshape(1, len(self.queries), self.heads, -1).transpose(1, 2)  # [1, heads, Q, dh]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1]), dim=-1)  # [N, heads, Q, T]
        return self.out((weights @ v).transpose(1, 2).flatten(1))  # [N, Q, heads, dh] -> [N, Q * width] -> [N, Dt]

    def _split(self, x: Tensor) -> Tensor:
        """[N, T, width] -> [N, heads, T, width / heads]."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)


def make_layout_projector(kind: str, stage_shape: tuple[int, ...], teacher_dim: int) -> nn.Module:
    """A ``pool`` or ``attention`` projector from a stage of one sample's ``stage_shape`` ((C, H, W) or (T, D))
    to the teacher's ``teacher_dim``."""
    tokens, dim = token_shape(tuple(stage_shape))
    if kind == "pool":
        return PoolProjector(dim, teacher_dim)
    if kind == "attention":
        return AttentionProjector(tokens, dim, teacher_dim)
    raise XDistillError(f"Unknown layout projector '{kind}'. Choose pool or attention (config 'projector').")


__all__ = ["ATTENTION_HEADS", "ATTENTION_QUERIES", "ATTENTION_WIDTH", "AttentionProjector", "PoolProjector",
           "as_feature_map", "as_tokens", "layout_shape", "layout_tokens", "make_layout_projector", "token_shape"]
