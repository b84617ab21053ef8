"""Projectors from a student's last stage, in its own layout, to a teacher's pooled features.

A cached teacher feature is one vector per sample [N, Dt], whatever the teacher's architecture; a student's
last stage is a feature map [N, C, H, W] (convolutional students) or a token sequence [N, T, D] (transformer
and mixer students). Both are read as tokens (a map's H*W positions become tokens of width C, and a square
token sequence can be laid back out as a map). A layout projector reads them preceded by one more token, the
student's pooled features (:func:`layout_tokens`: what the student's head reads, beside where it came from),
and maps them to the teacher's width:

- ``pool``: layer norm over each token, the mean over the tokens, a linear layer to Dt;
- ``attention``: the linear projector on the pooled features plus a cross-attention branch over the stage's
  tokens, in the spirit of ScaleKD's cross-attention feature alignment (Fan et al. 2024). The branch's learned
  queries each gather what the teacher's feature needs from wherever it lies in the student's layout; their
  outputs are concatenated and mapped to Dt by a layer initialised at zero, so an untrained attention
  projector *is* the linear projector and training adds to it only what the layout explains:

    out = W_f f + b_f + W_o concat_q softmax(Q_q K^T / sqrt(d_h)) V + b_o,  K = X W_k, V = X W_v, X = LN(S) + P

  per head of width d_h, with f the pooled features (the first token), S the stage's T tokens, P a learned
  position embedding, and W_o = 0, b_o = 0 at initialisation.

Feature losses call the projector on the layout tokens as they would call a linear projector on pooled
features (:func:`xdistill.losses.features.project`).
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
    CNN's pooled map); the stage's tokens say where it came from. Pooled features of another width than the
    stage are replaced by the mean of the stage's tokens (what a pooling head would read of it)."""
    tokens = as_tokens(stage)
    pooled = features.to(tokens.dtype) if features.shape[-1] == tokens.shape[-1] else tokens.mean(dim=1)
    return torch.cat([pooled[:, None, :], tokens], dim=1)


def layout_shape(stage_shape: tuple[int, ...]) -> tuple[int, int]:
    """One sample's shape (1 + T, D) of :func:`layout_tokens` for a stage of ``stage_shape``."""
    tokens, dim = token_shape(stage_shape)
    return tokens + 1, dim


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
    """Layout tokens [N, 1 + T, D] -> the linear projection of the first (the pooled features) plus ``queries``
    learned queries cross-attending over the other T, mapped by a zero-initialised layer -> [N, Dt]."""

    def __init__(self, tokens: int, dim: int, teacher_dim: int, queries: int = ATTENTION_QUERIES,
                 width: int = ATTENTION_WIDTH, heads: int = ATTENTION_HEADS) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"The attention projector's width ({width}) must be divisible by its heads ({heads}).")
        self.heads = heads
        self.linear = nn.Linear(dim, teacher_dim)  # first, so a seed gives it the linear projector's initial weights
        self.norm = nn.LayerNorm(dim)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.queries = nn.Parameter(torch.randn(queries, width) * 0.02)
        self.key = nn.Linear(dim, width)
        self.value = nn.Linear(dim, width)
        self.out = nn.Linear(queries * width, teacher_dim)
        nn.init.zeros_(self.out.weight)  # the branch starts at zero: the projector starts as the linear one
        nn.init.zeros_(self.out.bias)

    def forward(self, layout: Tensor) -> Tensor:
        if layout.dim() != 3 or layout.shape[1] != self.position.shape[1] + 1:
            raise XDistillError(f"The attention projector reads layout tokens [N, 1 + T, D] with T = "
                                f"{self.position.shape[1]}. Got shape {list(layout.shape)}. Pass "
                                f"layout_tokens(features, stage) (xdistill.losses.alignment).")
        return self.linear(layout[:, 0]) + self.branch(layout[:, 1:])

    def branch(self, tokens: Tensor) -> Tensor:
        """The stage's tokens [N, T, D] -> what the learned queries gather from them -> [N, Dt]."""
        x = self.norm(tokens) + self.position
        k, v = self._split(self.key(x)), self._split(self.value(x))
        q = self.queries.reshape(1, len(self.queries), self.heads, -1).transpose(1, 2)  # [1, heads, Q, dh]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1]), dim=-1)  # [N, heads, Q, T]
        return self.out((weights @ v).transpose(1, 2).flatten(1))  # [N, Q, heads, dh] -> [N, Q * width] -> [N, Dt]

    def _split(self, x: Tensor) -> Tensor:
        """[N, T, width] -> [N, heads, T, width / heads]."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)


def make_layout_projector(kind: str, layout_shape: tuple[int, int], teacher_dim: int) -> nn.Module:
    """A ``pool`` or ``attention`` projector from one sample's layout tokens of shape ``layout_shape``
    ((1 + T, D), :func:`layout_shape`) to the teacher's ``teacher_dim``."""
    if len(layout_shape) != 2 or layout_shape[0] < 2:
        raise XDistillError(f"A layout projector reads one sample's layout tokens of shape (1 + T, D), T >= 1 "
                            f"(layout_shape(stage_shape)). Got {list(layout_shape)}.")
    tokens, dim = layout_shape
    if kind == "pool":
        return PoolProjector(dim, teacher_dim)
    if kind == "attention":
        return AttentionProjector(tokens - 1, dim, teacher_dim)
    raise XDistillError(f"Unknown layout projector '{kind}'. Choose pool or attention (config 'projector').")


__all__ = ["ATTENTION_HEADS", "ATTENTION_QUERIES", "ATTENTION_WIDTH", "AttentionProjector", "PoolProjector",
           "as_feature_map", "as_tokens", "layout_shape", "layout_tokens", "make_layout_projector", "token_shape"]
