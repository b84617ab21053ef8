"""The student's training stream: the target's train text in the student's tokens, and the
teachers' cached rows aligned with it.

    stream = [BOS] doc_1 [BOS] doc_2 ...         (one int64 array)
    rows[j] = the teacher row predicting stream[j], or -1 where stream[j] is BOS

A training window is ``stream[a:a + C + 1]``: the student reads the first C ids and predicts the
next id at each position. Windows start at offsets drawn from (seed, epoch, step), so a resumed
run draws the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.train.loop import seed_of


@dataclass
class TokenStream:
    ids: np.ndarray  # [L] int64
    rows: np.ndarray  # [L] int64 teacher row of each position (-1: no target)
    doc_tokens: list[int]  # tokens of each document (without BOS)
    docs: np.ndarray  # [L] int64 document of each position
    spans: np.ndarray | None = None  # [n, 2] int64 byte span of each token (without BOS) within its document


def token_stream(documents: list[str], tokenizer) -> TokenStream:
    if tokenizer.bos_id is None:
        raise XDistillError(f"The student's tokenizer ('{tokenizer.source}') has no BOS token '<|bos|>'. Use a "
                            "tokenizer written by xdistill (xdistill pretrain or the LM demo world).")
    ids, rows, counts, docs, spans, row = [], [], [], [], [], 0
    for index, document in enumerate(documents):
        encoded, span = tokenizer.encode(document)
        spans.append(span.reshape(-1, 2))
        ids.append(np.concatenate([[tokenizer.bos_id], encoded]))
        rows.append(np.concatenate([[-1], np.arange(row, row + len(encoded))]))
        docs.append(np.full(len(encoded) + 1, index))
        counts.append(len(encoded))
        row += len(encoded)
    return TokenStream(np.concatenate(ids).astype(np.int64), np.concatenate(rows).astype(np.int64), counts,
                       np.concatenate(docs).astype(np.int64), np.concatenate(spans).astype(np.int64))


def window_batches(stream: TokenStream, context: int, batch_size: int, seed: int, epoch: int,
                   domain_of_doc: np.ndarray | None = None, domain_weights: np.ndarray | None = None):
    """``step -> {"ids", "targets", "rows"}``, each [B, C]: random windows of the stream.

    With ``domain_weights`` [D] (and each document's domain index ``domain_of_doc``), each window first draws
    a domain with those probabilities, then a start among the windows that begin in that domain's documents."""
    length = len(stream.ids)
    width = min(context, length - 1)
    ids, rows = torch.from_numpy(stream.ids), torch.from_numpy(stream.rows)
    by_domain = None
    if domain_weights is not None:
        start_domains = domain_of_doc[stream.docs[: length - width]]
        by_domain = [np.flatnonzero(start_domains == d) for d in range(len(domain_weights))]
        weights = np.array([w if len(b) else 0.0 for w, b in zip(domain_weights, by_domain)], dtype=np.float64)
        weights /= weights.sum()

    def batch(step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(seed_of(seed, epoch, step, 11))
        if by_domain is None:
            starts = torch.from_numpy(rng.integers(0, length - width, size=batch_size))
        else:
            chosen = rng.choice(len(weights), size=batch_size, p=weights)
            starts = torch.from_numpy(np.array([by_domain[d][rng.integers(len(by_domain[d]))] for d in chosen]))
        index = starts[:, None] + torch.arange(width + 1)[None, :]
        return {"ids": ids[index[:, :-1]], "targets": ids[index[:, 1:]], "rows": rows[index[:, 1:]]}

    return batch


def steps_per_epoch(stream: TokenStream, context: int, batch_size: int, cap: int = 0) -> int:
    steps = max(1, int(np.ceil((len(stream.ids) - 1) / (batch_size * min(context, len(stream.ids) - 1)))))
    return min(steps, cap) if cap else steps
