"""``gpt``: a small causal transformer over token ids (:class:`xdistill.models.gpt.GPT`).

As a language-model student it predicts the next token at every position
(``token_logits(ids [N, L]) -> [N, L, vocab_size]``, the output projection tied to the token
embedding). It also honours the classification interface of every student: ``forward_features``
is the hidden state at the last real token (0 = padding), and ``head`` maps it to ``num_classes``;
with ``num_classes == vocab_size`` the head is the tied output projection, so ``forward`` is the
next-token prediction after the sequence.
"""

from __future__ import annotations

import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.models.gpt import GPT, GPTConfig
from xdistill.students.build import register_student


class GPTStudent(nn.Module):
    input_dtype = torch.long

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, config: GPTConfig) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.config = config
        self.gpt = GPT(config)
        self.feature_dim = config.d_model
        self.head = nn.Linear(config.d_model, num_classes) if num_classes != config.vocab_size else None

    def token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.gpt.token_logits(ids)

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.gpt.hidden(ids)
        last = ((ids != 0).long().cumsum(dim=1).argmax(dim=1))  # the last real (non-padding) position
        return hidden[torch.arange(len(ids)), last]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(ids)
        return self.gpt.project(features) if self.head is None else self.head(features)


@register_student("gpt", inputs=("tokens",))
def gpt(input_shape, num_classes, vocab_size: int = 0, d_model: int = 64, n_layer: int = 3, n_head: int = 4,
        context: int = 0) -> GPTStudent:
    """Small causal transformer (GPT): next-token prediction over token ids; a language-model student.

    vocab_size: token ids 0..vocab_size-1 (required; the tokenizer's size)
    d_model: width of the residual stream (32-512)
    n_layer: transformer blocks (1-12)
    n_head: attention heads (d_model must divide by it)
    context: positions attended over; 0 = the input length
    """
    if vocab_size < 2:
        raise XDistillError(f"Student 'gpt' needs vocab_size >= 2 (the tokenizer's size). Got {vocab_size}.")
    config = GPTConfig(vocab_size=vocab_size, context=context or int(input_shape[0]), d_model=d_model,
                       n_layer=n_layer, n_head=n_head)
    problems = config.problems()
    if problems:
        raise XDistillError(f"Cannot build student 'gpt': {' '.join(problems)}")
    return GPTStudent(input_shape, num_classes, config)
