"""Teacher targets for the student: one teacher's cached rows, or a weighted mixture of several.

A mixture of teachers that share a tokenizer is taken over the full vocabulary (each teacher's
cached distribution: its top k plus the tail spread uniformly) and cached again as the top k of
the mixture plus its tail, so a mixed target costs a training step what a single teacher does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.kinds.language_modeling.topk import MIN_LOG_PROB, TopKTargets, reconstruct

CHUNK = 2048  # tokens mixed at a time (bounds the dense [chunk, V] buffer)


def check_alignment(targets: TopKTargets, doc_tokens: list[int], teacher: str) -> None:
    if list(targets.doc_tokens) != list(doc_tokens):
        raise XDistillError(f"Teacher '{teacher}' cut the train text into {sum(targets.doc_tokens)} tokens and the "
                            f"student into {sum(doc_tokens)}: their tokenizers differ, and distilling across "
                            "tokenizers is not supported yet. Give the student the teacher's tokenizer (tokenizer=FILE).")


def mix_targets(parts: list[TopKTargets], weights, k: int | None = None) -> TopKTargets:
    """The weighted mixture of teachers' cached distributions (same tokenizer), as top-k rows + tail."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(parts) == 1:
        return parts[0]
    if len({p.vocab_size for p in parts}) != 1 or len({len(p.ids) for p in parts}) != 1:
        raise XDistillError("Teachers mixed into one target must share a tokenizer (the same vocabulary and tokens).")
    weights = weights / weights.sum()
    vocab, k = parts[0].vocab_size, k or parts[0].ids.shape[1]
    n = len(parts[0].ids)
    ids = torch.empty((n, k), dtype=torch.long)
    logp = torch.empty((n, k))
    tail = torch.empty(n)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        mixed = torch.zeros((stop - start, vocab), dtype=torch.float64)
        for w, part in zip(weights, parts):
            full = reconstruct(part.ids[start:stop], part.logp[start:stop], part.tail_logp[start:stop], vocab)
            mixed += w * full.double().exp()
        top, top_ids = mixed.topk(k, dim=1)
        ids[start:stop] = top_ids
        logp[start:stop] = top.log().clamp(min=MIN_LOG_PROB).float()
        tail[start:stop] = torch.log((1 - top.sum(dim=1)).clamp(min=math.exp(MIN_LOG_PROB))).float()
    first = parts[0]
    info = {"mixed": [p.info.get("teacher") for p in parts], "weights": weights.tolist()}
    return TopKTargets(ids, logp, tail, first.spans, first.doc_tokens, vocab, info)
