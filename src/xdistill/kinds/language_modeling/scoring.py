"""Bits per byte, one convention for every language model whatever its tokenizer.

    bits per byte = (sum over the text's tokens of -ln p(token | its prefix)) / ln 2 / (UTF-8 bytes)

Each document is scored from its start: a model whose tokenizer has a BOS token conditions the
first token on it; without one, the first token costs ln(V) nats (a uniform guess over the V ids).
A document longer than the context is scored with a sliding window of stride half the context,
and each token is counted once, in the first window that predicts it with at least half a
context behind it (or from the document's start). A "language model" here is anything with
``tokenizer`` (``encode(text) -> (ids, spans)``, ``bos_id``), ``context``, ``vocab_size`` and
``token_logits(ids [B, T]) -> [B, T, V]``: a teacher, or a student behind :class:`StudentLM`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from xdistill.errors import XDistillError


@dataclass
class Window:
    """One window of a document's sequence (BOS first when there is one): ``sequence[start:end]`` is fed
    to the model, and the targets ``sequence[first:end]`` are scored from it (``first > start``)."""

    document: int
    start: int
    end: int
    first: int


def sequence_of(ids: np.ndarray, bos_id: int | None) -> np.ndarray:
    return np.concatenate([[bos_id], ids]).astype(np.int64) if bos_id is not None else np.asarray(ids, np.int64)


def windows(length: int, context: int, document: int = 0) -> list[Window]:
    """The windows that score every target of a sequence of ``length`` ids once: targets 1..length-1."""
    if context < 2:
        raise XDistillError(f"A language model's context must be >= 2 tokens to be scored. Got {context}.")
    if length < 2:
        return []
    stride = max(1, context // 2)
    out, start, first = [], 0, 1
    while True:
        end = min(start + context, length)
        out.append(Window(document, start, end, first))
        if end == length:
            return out
        first, start = end, start + stride


def window_log_probs(model, sequences: list[np.ndarray], batch_size: int = 16,
                     bar=None) -> Iterator[tuple[Window, torch.Tensor, np.ndarray]]:
    """For every window in document order: (window, log-probabilities [n, V] of its scored targets, targets [n]).

    Concatenated over a document's windows, the rows predict ``sequence[1:]`` in order."""
    context = int(model.context)
    planned = [w for d, seq in enumerate(sequences) for w in windows(len(seq), context, d)]
    for b0 in range(0, len(planned), batch_size):
        chunk = planned[b0:b0 + batch_size]
        width = max(w.end - w.start for w in chunk)
        batch = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, w in enumerate(chunk):
            batch[row, :w.end - w.start] = torch.from_numpy(sequences[w.document][w.start:w.end])
        log_probs = torch.log_softmax(model.token_logits(batch).float(), dim=-1)
        for row, w in enumerate(chunk):
            # logits at position p predict the token at p + 1
            rows = log_probs[row, w.first - 1 - w.start:w.end - 1 - w.start]
            yield w, rows, sequences[w.document][w.first:w.end]
        if bar is not None:
            bar.update(len(chunk))


@dataclass
class TextScore:
    bits_per_byte: float
    nats_per_token: float  # per token of the model's own tokenizer
    tokens: int
    bytes: int
    tokens_per_second: float

    def to_json(self) -> dict:
        return {"bits_per_byte": self.bits_per_byte, "nats_per_token": self.nats_per_token,
                "tokens_per_second": self.tokens_per_second, "n_tokens": self.tokens, "n_bytes": self.bytes}


def score_text(model, documents: list[str], batch_size: int = 16, bar=None) -> TextScore:
    """Bits per byte of ``documents`` under ``model`` (see the module docstring)."""
    tokenizer = model.tokenizer
    encoded = [tokenizer.encode(d)[0] for d in documents]
    sequences = [sequence_of(ids, tokenizer.bos_id) for ids in encoded]
    nats = sum(math.log(model.vocab_size) for ids in encoded if tokenizer.bos_id is None and len(ids))
    started = time.perf_counter()
    with torch.inference_mode():
        for _, log_probs, targets in window_log_probs(model, sequences, batch_size, bar):
            nats -= float(log_probs.gather(1, torch.from_numpy(targets)[:, None]).double().sum())
    seconds = time.perf_counter() - started
    tokens = sum(len(ids) for ids in encoded)
    n_bytes = sum(len(d.encode("utf-8")) for d in documents)
    return TextScore(nats / math.log(2) / max(n_bytes, 1), nats / max(tokens, 1), tokens, n_bytes,
                     tokens / seconds if seconds > 0 else float("inf"))


class StudentLM:
    """A student network (``token_logits``) and its tokenizer, read as a language model."""

    def __init__(self, network: torch.nn.Module, tokenizer, context: int) -> None:
        self.network, self.tokenizer, self.context = network, tokenizer, context
        self.vocab_size = tokenizer.vocab_size

    def token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.network.token_logits(ids)

