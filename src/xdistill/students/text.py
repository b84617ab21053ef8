"""``text-cnn`` and ``text-transformer``: students over (L,) token-id sequences.

Token id 0 is padding: its embedding is zero and held fixed, and the
transformer ignores it in attention and pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xdistill.errors import XDistillError
from xdistill.students.blocks import EncoderBlock
from xdistill.students.build import dim_divisible_by_heads, int_at_least, raise_problems, register_student

PAD_ID = 0


class TextCNNStudent(nn.Module):
    """Embedding, parallel 1-D convolutions, ReLU and max-pool over time (Kim 2014)."""

    input_dtype = torch.long

    def __init__(
        self,
        input_shape: tuple[int],
        num_classes: int,
        vocab_size: int,
        dim: int,
        channels: int,
        kernel_sizes: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, kernel_size=k) for k in kernel_sizes)
        self.min_length = max(kernel_sizes)
        self.feature_dim = channels * len(kernel_sizes)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, L] int64 -> [N, channels * len(kernel_sizes)]."""
        if tokens.shape[1] < self.min_length:
            tokens = F.pad(tokens, (0, self.min_length - tokens.shape[1]), value=PAD_ID)
        x = self.embed(tokens).transpose(1, 2)
        return torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, L] int64 -> logits [N, num_classes]."""
        return self.head(self.forward_features(tokens))


class TextTransformerStudent(nn.Module):
    """Token and position embeddings, ``depth`` encoder blocks, mean over non-pad tokens."""

    input_dtype = torch.long

    def __init__(
        self, input_shape: tuple[int], num_classes: int, vocab_size: int, dim: int, depth: int, heads: int
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.max_length = input_shape[0]
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.pos_embed = nn.Parameter(torch.randn(1, self.max_length, dim) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, mlp_ratio=2) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, L] int64 with L <= input_shape[0] -> [N, dim]."""
        length = tokens.shape[1]
        if length > self.max_length:
            raise XDistillError(
                f"The text-transformer student was built for sequences of at most {self.max_length} tokens. "
                f"Got {length}. Truncate the tokens or build it with input_shape=({length},)."
            )
        padding = tokens.eq(PAD_ID)
        # An all-padding row would leave every key masked and the softmax NaN;
        # let it attend freely, its pooled features are zeroed below anyway.
        key_padding = padding & ~padding.all(dim=1, keepdim=True)
        x = self.embed(tokens) + self.pos_embed[:, :length]
        for block in self.blocks:
            x = block(x, key_padding)
        x = self.norm(x)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, L] int64 -> logits [N, num_classes]."""
        return self.head(self.forward_features(tokens))


@register_student("text-cnn", inputs=("tokens",))
def text_cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    vocab_size: int,
    dim: int = 32,
    channels: int = 32,
    kernel_sizes: tuple[int, ...] = (3, 4, 5),
) -> TextCNNStudent:
    """Convolutional text classifier over token ids.

    vocab_size: number of token ids, padding id 0 included (required).
    dim: embedding width (16-300).
    channels: filters per kernel size (16-128).
    kernel_sizes: widths of the 1-D convolutions, in tokens.
    """
    problems = int_at_least("vocab_size", vocab_size, 2) + int_at_least("dim", dim, 1)
    problems += int_at_least("channels", channels, 1)
    if (
        not isinstance(kernel_sizes, (tuple, list))
        or not kernel_sizes
        or any(int_at_least("kernel_sizes", k, 1) for k in kernel_sizes)
    ):
        problems.append(f"the knob 'kernel_sizes' must be a non-empty tuple of ints >= 1. Got {kernel_sizes!r}.")
    raise_problems("text-cnn", problems)
    return TextCNNStudent(
        input_shape, num_classes, vocab_size, dim=dim, channels=channels, kernel_sizes=tuple(kernel_sizes)
    )


@register_student("text-transformer", inputs=("tokens",))
def text_transformer(
    input_shape: tuple[int, ...], num_classes: int, vocab_size: int, dim: int = 32, depth: int = 2, heads: int = 2
) -> TextTransformerStudent:
    """Tiny transformer encoder over token ids.

    vocab_size: number of token ids, padding id 0 included (required).
    dim: token width, divisible by heads (16-256).
    depth: encoder blocks (1-6).
    heads: attention heads (1-4).
    """
    problems = int_at_least("vocab_size", vocab_size, 2) + int_at_least("dim", dim, 1)
    problems += int_at_least("depth", depth, 1) + int_at_least("heads", heads, 1)
    if not problems:
        problems += dim_divisible_by_heads(dim, heads)
    raise_problems("text-transformer", problems)
    return TextTransformerStudent(input_shape, num_classes, vocab_size, dim=dim, depth=depth, heads=heads)
