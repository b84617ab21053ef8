"""Byte alignment of tokenizations: where several tokenizers cut the same text at the same offsets.

Every token covers a byte span of its document (``xdistill.models.tokenizer``; a byte-fallback token covers
one byte of a character, so spans may split a character's UTF-8 bytes). Two tokenizations of a document share
a *boundary* at every byte offset where both end a token; the text between two consecutive shared boundaries
is a *chunk*. Both models then predict the chunk from the same text before it, so their likelihoods of the
chunk compare, and at a chunk's first byte both predict their next token from the same prefix.

    ends = chunk_boundaries([student_ends, teacher_ends])      # shared token ends, ascending
    chunk_of(token_ends, ends)                                   # each token's chunk index

Everything here is computed once, when a cross-tokenizer target is built; a training step only gathers.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from xdistill.errors import XDistillError


def chunk_boundaries(token_ends: list[np.ndarray]) -> np.ndarray:
    """The byte offsets where every tokenization ends a token (each ``token_ends`` ascending), ascending."""
    return reduce(np.intersect1d, [np.asarray(e, dtype=np.int64) for e in token_ends])


def chunk_of(token_ends: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """Index of the chunk each token falls in: the first boundary at or after the token's end."""
    return np.searchsorted(boundaries, np.asarray(token_ends, dtype=np.int64), side="left")


def split_by_document(values: np.ndarray, doc_tokens: list[int]) -> list[np.ndarray]:
    return np.split(values, np.cumsum(doc_tokens)[:-1]) if len(doc_tokens) else []


def document_chunks(student_spans: np.ndarray, teacher_spans: list[np.ndarray], name: str = "teacher"):
    """For one document: (student chunk index [n_s], teacher chunk indices [n_t] each, number of chunks).

    Every tokenization must end at the document's last byte (they all cover the whole text)."""
    ends = [student_spans[:, 1]] + [s[:, 1] for s in teacher_spans]
    lasts = {int(e[-1]) for e in ends if len(e)}
    if len(lasts) > 1:
        raise XDistillError(f"The tokenizations of {name} and the student end at different bytes of a document "
                            f"({sorted(lasts)}): a tokenizer must cover the whole text to be aligned by bytes.")
    boundaries = chunk_boundaries(ends)
    return chunk_of(ends[0], boundaries), [chunk_of(e, boundaries) for e in ends[1:]], len(boundaries)


def chunk_starts(chunks: np.ndarray) -> np.ndarray:
    """[n] bool: the tokens that open their chunk."""
    return np.concatenate([[True], chunks[1:] != chunks[:-1]]) if len(chunks) else np.zeros(0, bool)


def chunk_lengths_at_ends(chunks: np.ndarray) -> np.ndarray:
    """[n] int64: at the last token of each chunk, the number of tokens in it; 0 elsewhere."""
    out = np.zeros(len(chunks), dtype=np.int64)
    if len(chunks) == 0:
        return out
    last = np.concatenate([chunks[1:] != chunks[:-1], [True]])
    counts = np.bincount(chunks)
    out[last] = counts[chunks[last]]
    return out


def token_bytes(tokenizer) -> list[bytes | None]:
    """The bytes each id of a tokenizer spells (None for special tokens), from its vocabulary."""
    return tokenizer.token_bytes()


def shared_vocabulary(teacher_tokenizer, student_tokenizer) -> np.ndarray:
    """[V_teacher] int64: the student id spelling the same bytes as each teacher id, or -1. Where the teacher
    spells the same bytes twice (a piece and its byte-fallback form), only its first id maps."""
    student = {}
    for index, data in enumerate(token_bytes(student_tokenizer)):
        if data is not None and data not in student:
            student[data] = index
    mapped, used = np.full(teacher_tokenizer.vocab_size, -1, dtype=np.int64), set()
    for index, data in enumerate(token_bytes(teacher_tokenizer)):
        target = student.get(data) if data is not None else None
        if target is not None and target not in used:
            mapped[index] = target
            used.add(target)
    return mapped
