"""The bits-per-byte convention, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xdistill.kinds.language_modeling.scoring import score_text, windows


class ByteTokenizer:
    """One token per UTF-8 byte (ids 0..255), optionally a BOS id 256."""

    identity = "bytes"
    source = "test"

    def __init__(self, bos: bool) -> None:
        self.bos_id = 256 if bos else None

    def encode(self, text):
        ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        ends = np.arange(1, len(ids) + 1)
        return ids, np.stack([ends - 1, ends], axis=1)


class UniformBytes:
    """Uniform over the 256 bytes (BOS, when there is one, gets no mass)."""

    def __init__(self, bos: bool, context: int = 8) -> None:
        self.tokenizer, self.context = ByteTokenizer(bos), context
        self.vocab_size = 257 if bos else 256

    def token_logits(self, ids):
        logits = torch.zeros((*ids.shape, self.vocab_size))
        if self.vocab_size == 257:
            logits[..., 256] = -math.inf
        return logits


class Bigram:
    """p(next | previous byte) from a fixed random table; records every window it is fed."""

    def __init__(self, context: int) -> None:
        self.tokenizer, self.context, self.vocab_size = ByteTokenizer(True), context, 257
        self.table = torch.randn(257, 257, generator=torch.Generator().manual_seed(0))
        self.fed = []

    def token_logits(self, ids):
        self.fed.append(ids.clone())
        return self.table[ids]


@pytest.mark.parametrize("bos", [True, False])
def test_a_uniform_model_over_bytes_gives_exactly_8_bits_per_byte(bos):
    texts = ["hello world, this text is longer than the context", "é✓", "x"]
    score = score_text(UniformBytes(bos), texts)
    # log-softmax runs in float32 (7 significant digits); the sum over tokens is float64
    assert score.bits_per_byte == pytest.approx(8.0, rel=1e-6)
    assert score.tokens == sum(len(t.encode()) for t in texts)


def test_windowed_scoring_equals_the_hand_computed_sum_over_every_token_once():
    text = "the sliding window scores each token exactly once!"
    model = Bigram(context=8)
    score = score_text(model, [text], batch_size=3)
    sequence = [256] + list(text.encode())
    log_probs = torch.log_softmax(model.table.double(), dim=1)
    nats = -sum(float(log_probs[prev, nxt]) for prev, nxt in zip(sequence[:-1], sequence[1:]))
    assert score.bits_per_byte == pytest.approx(nats / math.log(2) / len(text.encode()), rel=1e-6)
    assert all(batch.shape[1] <= 8 for batch in model.fed)


@pytest.mark.parametrize(("length", "context"), [(2, 8), (8, 8), (9, 8), (50, 8), (51, 7), (100, 2)])
def test_windows_score_each_target_once_with_at_least_half_a_context(length, context):
    scored = []
    for w in windows(length, context):
        assert w.end - w.start <= context and w.start < w.first <= w.end
        if w.start > 0:
            assert w.first - w.start >= context // 2
        scored += range(w.first, w.end)
    assert scored == list(range(1, length))
