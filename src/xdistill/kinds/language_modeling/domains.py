"""Domain-reweighted sampling for a target text that mixes domains (after DDK: Liu et al. 2024, "DDK:
Distilling Domain Knowledge for Efficient Large Language Models").

Before each epoch the student's and the teachers' mean negative log-likelihood per token are measured
on the train documents of each domain (the teachers' from the cached rows, so no teacher runs), and
windows are drawn from domain d with probability

    p_d = (1 - SMOOTHING) * softmax_d(student_nll_d / teacher_nll_d) + SMOOTHING / D

so the student sees more of the domains where it trails the teachers most, and never none of one.
"""

from __future__ import annotations

import numpy as np
import torch

from xdistill.kinds.language_modeling.scoring import StudentLM, sequence_of, window_log_probs
from xdistill.kinds.language_modeling.topk import teacher_token_logp

SMOOTHING = 0.2  # the uniform share that keeps every domain in the mix (DDK's smoothing, 0..1)


def domain_index(domains: list[str]) -> tuple[list[str], np.ndarray]:
    names = sorted(set(domains))
    return names, np.array([names.index(d) for d in domains], dtype=np.int64)


def teacher_token_nll(targets, stream) -> np.ndarray:
    """[n] the cached target's -ln p of each actual next token (top-k entry, or its share of the tail)."""
    positions = np.flatnonzero(stream.rows >= 0)
    rows = torch.from_numpy(stream.rows[positions])
    actual = torch.from_numpy(stream.ids[positions])
    logp = teacher_token_logp(targets.ids[rows], targets.logp[rows], targets.tail_logp[rows], actual, targets.vocab_size)
    return (-logp).double().numpy()


def per_domain_means(values: np.ndarray, doc_tokens: list[int], doc_domain: np.ndarray, n_domains: int) -> np.ndarray:
    doc_of_token = np.repeat(np.arange(len(doc_tokens)), doc_tokens)
    sums = np.bincount(doc_domain[doc_of_token], weights=values, minlength=n_domains)
    counts = np.bincount(doc_domain[doc_of_token], minlength=n_domains)
    return sums / np.maximum(counts, 1)


def student_token_nll(network, tokenizer, context: int, documents: list[str]) -> np.ndarray:
    """[n] the student's -ln p of each token of the documents, in order."""
    sequences = [sequence_of(tokenizer.encode(d)[0], tokenizer.bos_id) for d in documents]
    parts = []
    was_training = network.training
    network.eval()
    with torch.inference_mode():
        for _, log_probs, targets in window_log_probs(StudentLM(network, tokenizer, context), sequences, 32):
            parts.append(-log_probs.gather(1, torch.from_numpy(targets)[:, None]).squeeze(1).double().numpy())
    network.train(was_training)
    return np.concatenate(parts) if parts else np.zeros(0)


def domain_weights(student_nll: np.ndarray, teacher_nll: np.ndarray) -> np.ndarray:
    ratio = student_nll / np.maximum(teacher_nll, 1e-6)
    soft = np.exp(ratio - ratio.max())
    soft /= soft.sum()
    return (1 - SMOOTHING) * soft + SMOOTHING / len(soft)
