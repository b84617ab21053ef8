"""xdistill's own small causal language model: a pre-norm decoder-only transformer.

    config = GPTConfig(vocab_size=2048, context=128, d_model=64, n_layer=3, n_head=4)
    model = GPT(config)
    logits = model.token_logits(ids)        # ids [B, T] int64 -> [B, T, vocab_size]

Saved as a folder (``model.safetensors``, ``config.json`` and, beside them, ``tokenizer.json``)
or as one ``.safetensors`` file whose metadata holds the config and the tokenizer, so a
pretrained student travels as a single file. The output projection shares the token embedding's
weights (``tie``), which keeps a small model's parameters in its layers rather than its vocabulary.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int  # token ids 0..vocab_size-1
    context: int = 128  # positions the model attends over (64-1024)
    d_model: int = 64  # width of the residual stream (32-512)
    n_layer: int = 3  # transformer blocks (1-12)
    n_head: int = 4  # attention heads; d_model must divide by it
    mlp_ratio: int = 4  # hidden width of each block's MLP over d_model
    tie: bool = True  # the output projection shares the token embedding's weights

    def problems(self) -> list[str]:
        problems = [f"'{key}' must be >= 1. Got {getattr(self, key)}." for key in
                    ("vocab_size", "context", "d_model", "n_layer", "n_head", "mlp_ratio") if getattr(self, key) < 1]
        if self.n_head >= 1 and self.d_model % self.n_head:
            problems.append(f"'d_model' ({self.d_model}) must be a multiple of 'n_head' ({self.n_head}).")
        return problems

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> "GPTConfig":
        raw = json.loads(text) if isinstance(text, str) else dict(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.ln1 = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.mlp_ratio * config.d_model), nn.GELU(),
                                 nn.Linear(config.mlp_ratio * config.d_model, config.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token ids [B, T] (T <= context) -> hidden states [B, T, d_model] -> next-token logits [B, T, V]."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = None if config.tie else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init)
        for block in self.blocks:  # GPT-2's scaling of the residual projections by depth
            nn.init.normal_(block.proj.weight, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        weight = self.token_embedding.weight if self.lm_head is None else self.lm_head.weight
        return hidden @ weight.t()

    def token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.hidden(ids))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_logits(ids)


def gpt_state(model: GPT) -> dict[str, torch.Tensor]:
    """The weights to save: contiguous copies, without a tied output projection (safetensors stores no aliases)."""
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


@torch.inference_mode()
def sample(logits_of, ids: list[int], context: int, max_new_tokens: int, temperature: float,
           generator: torch.Generator, stop: int | None = None) -> list[int]:
    """Continue ``ids`` by sampling ``max_new_tokens`` tokens (greedy at temperature 0).

    logits_of(ids [1, T]) -> [1, T, V]; the model sees its last ``context`` tokens."""
    out = list(ids)
    for _ in range(max_new_tokens):
        window = torch.tensor([out[-context:]], dtype=torch.long)
        last = logits_of(window)[0, -1].float()
        if temperature <= 0:
            token = int(last.argmax())
        else:
            token = int(torch.multinomial(torch.softmax(last / temperature, dim=-1), 1, generator=generator))
        if stop is not None and token == stop:
            break
        out.append(token)
    return out[len(ids):]
