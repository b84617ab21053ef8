"""Projectors from a student's pooled features and one of its stages, in its own layout, to a teacher's
pooled features.

A cached teacher feature is one vector per sample [N, Dt], whatever the teacher's architecture; a student's
stage is a feature map [N, C, H, W] (convolutional students) or a token sequence [N, T, D] (transformer and
mixer students). Both are read as tokens (a map's H*W positions become tokens of width C, and a square token
sequence can be laid back out as a map). A layout projector reads the student's *layout* (:func:`layout`): its
pooled features f [N, Df] (what its head reads: a ViT's class token, a CNN's pooled map) followed by one
stage's T tokens of width Ds, flattened into one row per sample [N, Df + T * Ds], and maps it to Dt:

- ``pool`` reads the last stage: layer norm over each of the tokens [f, S_1 .. S_T] (the mean token in place of
  f when Df != Ds), the mean over them, a linear layer to Dt;
- ``attention`` reads the second-to-last stage (:func:`read_stage`; the only stage of a one-stage student):
  the linear projector on the pooled features plus a cross-attention branch over that stage's tokens, in the
  spirit of ScaleKD's cross-attention feature alignment (Fan et al. 2024). The branch's learned queries each
  gather what the teacher's feature needs from wherever it lies in the student's layout; their outputs are
  concatenated and mapped to Dt by a layer initialised at zero, so an untrained attention projector *is* the
  linear projector and training adds to it only what the layout explains:

    out = W_f f + b_f + W_o concat_q softmax(Q_q K^T / sqrt(d_h)) V + b_o,  K = X W_k, V = X W_v, X = LN(S) + P

  per head of width d_h, with S the tokens of the stage before the last, P a learned position embedding, and
  W_o = 0, b_o = 0 at initialisation. The stage before the last, not the last, because the head reads only
  the pooled features: in a ViT the last block's patch-token outputs never reach the class token, while the
  tokens entering the last block are what its class token attends to, so the part of the feature loss the
  branch carries flows into what the head reads (in a CNN the last stage is computed from them). The branch's
  initial weights come from their own seed (:func:`branch_seed`), so adding it leaves the random numbers that
  the student, the linear path and the data order draw as they are without it.

Feature losses call the projector on the layout as they would call a linear projector on pooled features
(:func:`xdistill.losses.features.project`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from xdistill.errors import XDistillError

ATTENTION_QUERIES = 4  # learned queries of the attention projector
ATTENTION_WIDTH = 64  # width of its keys, values and queries
ATTENTION_HEADS = 4  # heads splitting that width
LAYOUT_PROJECTORS = ("pool", "attention")

Stage = TypeVar("Stage")


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


def read_stage(kind: str, stages: Sequence[Stage]) -> Stage:
    """The stage a layout projector of ``kind`` reads from a student's stages (tensors, or one sample's shapes):
    ``attention`` the second-to-last, or the only stage of a one-stage student; ``pool`` the last."""
    if kind not in LAYOUT_PROJECTORS:
        raise XDistillError(f"Unknown layout projector '{kind}'. Choose pool or attention (config 'projector').")
    if not stages:
        raise XDistillError("A layout projector reads a student's stages, and this student returned none.")
    return stages[-2] if kind == "attention" and len(stages) >= 2 else stages[-1]


def layout(features: Tensor, stage: Tensor) -> Tensor:
    """What a layout projector reads: the pooled features [N, Df], then the stage's tokens [N, T, Ds] flattened
    (token after token) -> [N, Df + T * Ds]."""
    tokens = as_tokens(stage)
    return torch.cat([features.to(tokens.dtype), tokens.flatten(1)], dim=1)


def layout_shape(feature_dim: int, stage_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(Df, T, Ds) of :func:`layout` for pooled features of width ``feature_dim`` and one sample's stage of shape
    ``stage_shape`` ((C, H, W) or (T, D))."""
    tokens, dim = token_shape(stage_shape)
    return feature_dim, tokens, dim


def token_shape(stage_shape: tuple[int, ...]) -> tuple[int, int]:
    """(tokens T, width D) of one sample's stage output of shape (C, H, W) or (T, D)."""
    if len(stage_shape) == 3:
        return stage_shape[1] * stage_shape[2], stage_shape[0]
    if len(stage_shape) == 2:
        return stage_shape[0], stage_shape[1]
    raise XDistillError(f"A student stage must be a feature map (C, H, W) or tokens (T, D) per sample. "
                        f"Got {list(stage_shape)}.")


def split_layout(rows: Tensor, shape: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """A layout [N, Df + T * Ds] of ``shape`` (Df, T, Ds) -> (pooled features [N, Df], tokens [N, T, Ds])."""
    features_dim, tokens, dim = shape
    if rows.dim() != 2 or rows.shape[1] != features_dim + tokens * dim:
        raise XDistillError(f"A layout projector built for layout_shape {shape} reads a layout [N, "
                            f"{features_dim + tokens * dim}] (Df + T * Ds). Got shape {list(rows.shape)}. Pass "
                            f"layout(features, read_stage(kind, stages)) (xdistill.losses.alignment).")
    return rows[:, :features_dim], rows[:, features_dim:].reshape(len(rows), tokens, dim)


def branch_seed(run_seed: int, index: int) -> int:
    """The seed of the attention branch of a run's ``index``-th projector: a stream of its own, derived from the
    run's seed, so the branch draws none of the numbers the rest of the run draws."""
    return int(np.random.SeedSequence([run_seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class PoolProjector(nn.Module):
    """Layout [N, Df + T * Ds] -> tokens [f (or their mean when Df != Ds), S_1 .. S_T] -> layer norm -> mean over
    tokens -> Linear -> [N, Dt]."""

    def __init__(self, shape: tuple[int, int, int], teacher_dim: int) -> None:
        super().__init__()
        self.layout_shape = tuple(shape)
        self.norm = nn.LayerNorm(shape[2])
        self.linear = nn.Linear(shape[2], teacher_dim)

    def forward(self, rows: Tensor) -> Tensor:
        features, tokens = split_layout(rows, self.layout_shape)
        first = features if features.shape[1] == tokens.shape[2] else tokens.mean(dim=1)
        return self.linear(self.norm(torch.cat([first[:, None], tokens], dim=1)).mean(dim=1))


class QueryAttention(nn.Module):
    """Tokens [N, T, D] -> layer norm, plus a position embedding -> ``queries`` learned queries cross-attending
    over them (``heads`` heads splitting ``width``) -> concatenated -> a zero-initialised Linear -> [N, Dt]."""

    def __init__(self, tokens: int, dim: int, teacher_dim: int, queries: int, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise XDistillError(f"The attention projector's width ({width}) must be divisible by its heads "
                                f"({heads}). Choose a width that is a multiple of {heads}.")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.queries = nn.Parameter(torch.randn(queries, width) * 0.02)
        self.key = nn.Linear(dim, width)
        self.value = nn.Linear(dim, width)
        self.out = nn.Linear(queries * width, teacher_dim)
        nn.init.zeros_(self.out.weight)  # the branch starts at zero: the projector starts as the linear one
        nn.init.zeros_(self.out.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.norm(tokens) + self.position
        k, v = self._split(self.key(x)), self._split(self.value(x))
        q = self.queries.reshape(1, len(self.queries), self.heads, -1).transpose(1, 2)  # [1, heads, Q, dh]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1]), dim=-1)  # [N, heads, Q, T]
        return self.out((weights @ v).transpose(1, 2).flatten(1))  # [N, Q, heads, dh] -> [N, Q * width] -> [N, Dt]

    def _split(self, x: Tensor) -> Tensor:
        """[N, T, width] -> [N, heads, T, width / heads]."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)


class AttentionProjector(nn.Module):
    """Layout [N, Df + T * Ds] -> the linear projection of the pooled features plus a :class:`QueryAttention`
    branch over the stage's tokens, whose initial weights come from ``seed`` alone -> [N, Dt]."""

    def __init__(self, shape: tuple[int, int, int], teacher_dim: int, seed: int, queries: int = ATTENTION_QUERIES,
                 width: int = ATTENTION_WIDTH, heads: int = ATTENTION_HEADS) -> None:
        super().__init__()
        self.layout_shape = tuple(shape)
        features_dim, tokens, dim = shape
        self.linear = nn.Linear(features_dim, teacher_dim)  # from the global stream: the linear projector's weights
        with torch.random.fork_rng(devices=[]):  # the branch's own stream; the global one is restored after
            torch.random.default_generator.manual_seed(seed)
            self.branch = QueryAttention(tokens, dim, teacher_dim, queries, width, heads)

    def forward(self, rows: Tensor) -> Tensor:
        features, tokens = split_layout(rows, self.layout_shape)
        return self.linear(features) + self.branch(tokens)


def make_layout_projector(kind: str, shape: tuple[int, int, int], teacher_dim: int, seed: int = 0) -> nn.Module:
    """A ``pool`` or ``attention`` projector from one sample's layout of ``shape`` (Df, T, Ds) (:func:`layout_shape`
    of the stage :func:`read_stage` picks) to the teacher's ``teacher_dim``; ``seed`` seeds the attention branch's
    initial weights (:func:`branch_seed`)."""
    if len(shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise XDistillError(f"A layout projector reads one sample's layout of shape (Df, T, Ds), each >= 1 "
                            f"(layout_shape(feature_dim, stage_shape)). Got {list(shape)}.")
    if kind == "pool":
        return PoolProjector(shape, teacher_dim)
    if kind == "attention":
        return AttentionProjector(shape, teacher_dim, seed)
    raise XDistillError(f"Unknown layout projector '{kind}'. Choose pool or attention (config 'projector').")


__all__ = ["ATTENTION_HEADS", "ATTENTION_QUERIES", "ATTENTION_WIDTH", "LAYOUT_PROJECTORS", "AttentionProjector",
           "PoolProjector", "QueryAttention", "as_feature_map", "as_tokens", "branch_seed", "layout", "layout_shape",
           "make_layout_projector", "read_stage", "split_layout", "token_shape"]
