"""The offline cache of a language-model teacher's next-token distributions.

For every token of the teacher's own tokenization of a split, in document order, one row:

    ids        [n, ceil(k * b / 8)] uint8   the top-k token ids, each packed to b = ceil(log2 V) bits
    logp       [n, k] float16               their log-probabilities, highest first
    tail_logp  [n] float16                  log of the probability mass outside the top k
    span_step  [n] uint8 | uint16           byte offset of the token's span minus the previous token's
                                            (the first token of a document: from the document's start)
    span_len   [n] uint8 | uint16           bytes the token covers
    nll        [n] float32                  -ln p(actual token): bits per byte without a second pass
    kl         [n] float16                  KL from the full distribution to the cached one

stored as shards of :class:`xdistill.cache.store.CacheStore` (checksummed, verified on read, a
shard found missing or damaged is recomputed, a finished entry is reused). ``entry.json`` records
the tokens of each document, k, V, b, the tokenizer's identity and the teacher's bits per byte and
mean reconstruction KL. The cached distribution of a token spreads the tail mass uniformly over the
V - k ids outside its top k.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xdistill.cache.store import CacheStore, CorruptShard, entry_key, now
from xdistill.errors import XDistillError
from xdistill.kinds.language_modeling.scoring import sequence_of, window_log_probs, windows
from xdistill.kinds.language_modeling.task import TextSplit
from xdistill.progress import progress_bar

FORMAT = "lm-topk-1"
DEFAULT_TOP_K = 32
SHARD_TOKENS = 65536
MIN_LOG_PROB = -60.0  # float16 keeps it; exp(-60) is far below any mass that matters


def id_bits(vocab_size: int) -> int:
    return max(1, math.ceil(math.log2(max(vocab_size, 2))))


def pack_ids(ids: np.ndarray, bits: int) -> np.ndarray:
    """[n, k] ids < 2**bits -> [n, ceil(k * bits / 8)] uint8, most significant bit first."""
    ids = np.asarray(ids, dtype=np.uint32)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    flat = ((ids[..., None] >> shifts) & 1).astype(np.uint8).reshape(len(ids), -1)
    return np.packbits(flat, axis=1)


def unpack_ids(packed: np.ndarray, k: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_ids`: [n, k] int64."""
    flat = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1)[:, :k * bits].reshape(len(packed), k, bits)
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    return flat.astype(np.int64) @ weights


def _small_uint(values: np.ndarray) -> np.ndarray:
    return values.astype(np.uint8 if values.max(initial=0) < 256 else np.uint16 if values.max() < 65536 else np.uint32)


def compress(log_probs: torch.Tensor, targets: np.ndarray, spans: np.ndarray, starts: np.ndarray, k: int,
             bits: int) -> dict[str, np.ndarray]:
    """One chunk of rows: log_probs [n, V] full distributions, targets [n], spans [n, 2] byte spans, starts [n]
    the offset each span's step is measured from."""
    vocab = log_probs.shape[1]
    k_kept = min(k, vocab)
    top, top_ids = log_probs.topk(k_kept, dim=1)
    top = top.clamp(min=MIN_LOG_PROB)
    tail = (1 - top.double().exp().sum(dim=1)).clamp(min=0)
    tail_logp = torch.log(tail).clamp(min=MIN_LOG_PROB).float()
    stored_top = top.half().float()
    stored_tail = tail_logp.half().float()
    cached = reconstruct(top_ids, stored_top, stored_tail, vocab)
    probs = log_probs.exp()
    kl = (probs * (log_probs - cached)).sum(dim=1).clamp(min=0)
    nll = -log_probs.gather(1, torch.from_numpy(targets)[:, None]).squeeze(1)
    return {
        "ids": pack_ids(top_ids.numpy(), bits),
        "logp": top.half().numpy(),
        "tail_logp": tail_logp.half().numpy(),
        "span_step": (spans[:, 0] - starts).astype(np.int64),
        "span_len": (spans[:, 1] - spans[:, 0]).astype(np.int64),
        "nll": nll.float().numpy(),
        "kl": kl.half().numpy(),
    }


def reconstruct(top_ids: torch.Tensor, top_logp: torch.Tensor, tail_logp: torch.Tensor, vocab: int) -> torch.Tensor:
    """The cached distribution as full log-probabilities [n, V]: the top k as stored, the tail mass spread
    uniformly over the other V - k ids, renormalised (the stored values are rounded)."""
    k = top_ids.shape[1]
    rest = max(vocab - k, 1)
    full = (tail_logp - math.log(rest))[:, None].expand(-1, vocab).clone()
    full.scatter_(1, top_ids, top_logp)
    return torch.log_softmax(full, dim=1)


@dataclass
class TopKTargets:
    """A teacher's cached distributions on a split, unpacked: one row per token of its tokenization."""

    ids: torch.Tensor  # [n, k] int64
    logp: torch.Tensor  # [n, k] float32
    tail_logp: torch.Tensor  # [n] float32
    spans: np.ndarray  # [n, 2] int64 byte spans within their documents
    doc_tokens: list[int]  # tokens of each document
    vocab_size: int
    info: dict
    nll: torch.Tensor | None = None  # [n] float32 -ln p(actual token), what chunk likelihoods sum


def entry_info_key(fingerprint: str, split: TextSplit, k: int) -> str:
    return entry_key(f"{fingerprint}|{FORMAT}|k={k}", split.fingerprint, 0, 0)


class TopKCache:
    """Extracts and reads language-model teachers' top-k distributions through a :class:`CacheStore`."""

    def __init__(self, root: str | Path, k: int = DEFAULT_TOP_K, batch_size: int = 16, progress: bool = True) -> None:
        if k < 1:
            raise XDistillError(f"'cache_top_k' must be >= 1. Got {k}.")
        self.store = CacheStore(root)
        self.k, self.batch_size, self.progress = k, batch_size, progress

    def key(self, teacher, split: TextSplit) -> str:
        return entry_info_key(teacher.fingerprint(), split, self.k)

    def ensure(self, teacher, split: TextSplit, log=None) -> dict:
        """Cache the teacher on the split (only the shards that are missing or damaged); returns entry.json."""
        key = self.key(teacher, split)
        info = self.store.read_entry_info(key)
        if info is not None and info.get("layout") == FORMAT and self._verified(key, info):
            return info
        with self.store.lock(key):
            info = self._extract(teacher, split, key, log)
        self.store.update_manifest({key: {k: v for k, v in info.items() if k != "doc_tokens"}},
                                   {"time": now(), "teacher": teacher.name, "split": split.name, "format": FORMAT})
        return info

    def _verified(self, key: str, info: dict) -> bool:
        try:
            for index, (start, stop) in enumerate(_ranges(info["n"], info["shard_tokens"])):
                self.store.read_shard(key, index, start, stop)
        except (FileNotFoundError, CorruptShard):
            return False
        return True

    def _extract(self, teacher, split: TextSplit, key: str, log) -> dict:
        tokenizer = teacher.tokenizer
        teacher.setup()
        vocab, bits = int(teacher.vocab_size), id_bits(int(teacher.vocab_size))
        encoded = [tokenizer.encode(d) for d in split.documents]
        doc_tokens = [len(ids) for ids, _ in encoded]
        n = sum(doc_tokens)
        if n == 0:
            raise XDistillError(f"Teacher '{teacher.name}' turns split '{split.name}' into no tokens.")
        ranges = _ranges(n, SHARD_TOKENS)
        missing = []
        for index, (start, stop) in enumerate(ranges):
            try:
                self.store.read_shard(key, index, start, stop)
            except FileNotFoundError:
                missing.append(index)
            except CorruptShard as exc:
                warnings.warn(f"Cache shard {index} of teacher '{teacher.name}' on split '{split.name}' is {exc}; "
                              "recomputing it.", stacklevel=2)
                missing.append(index)
        if missing:
            self._compute(teacher, split, key, encoded, ranges, set(missing), vocab, bits)
        totals = {"nll": 0.0, "kl": 0.0}
        for index, (start, stop) in enumerate(ranges):
            arrays = self.store.read_shard(key, index, start, stop)
            totals["nll"] += float(arrays["nll"].astype(np.float64).sum())
            totals["kl"] += float(arrays["kl"].astype(np.float64).sum())
        first_free = sum(math.log(vocab) for c in doc_tokens if c and tokenizer.bos_id is None)
        n_bytes = split.n_bytes
        nats = totals["nll"] + first_free
        info = {"layout": FORMAT, "teacher": teacher.name, "teacher_fingerprint": teacher.fingerprint(),
                "split": split.name, "split_fingerprint": split.fingerprint, "n": n, "shard_tokens": SHARD_TOKENS,
                "k": self.k, "vocab_size": vocab, "id_bits": bits, "tokenizer": tokenizer.identity,
                "bos_id": tokenizer.bos_id, "context": int(teacher.context), "doc_tokens": doc_tokens,
                "n_bytes": n_bytes, "bits_per_byte": nats / math.log(2) / n_bytes, "nats_per_token": nats / n,
                "reconstruction_kl": totals["kl"] / n, "created": now()}
        self.store.write_entry_info(key, info)
        info["bytes_on_disk"] = self.entry_bytes(key)
        self.store.write_entry_info(key, info)
        return self.store.read_entry_info(key)

    def _compute(self, teacher, split, key, encoded, ranges, missing: set[int], vocab: int, bits: int) -> None:
        bos = teacher.tokenizer.bos_id
        sequences = [sequence_of(ids, bos) for ids, _ in encoded]
        offsets = np.cumsum([0] + [len(ids) for ids, _ in encoded])
        # Only the documents that overlap a missing shard are run through the teacher.
        wanted_docs = [d for d in range(len(encoded))
                       if any(ranges[i][0] < offsets[d + 1] and offsets[d] < ranges[i][1] for i in missing)]
        buffers: dict[int, list[dict]] = {i: [] for i in missing}
        total_windows = sum(len(windows(len(sequences[d]), int(teacher.context))) for d in wanted_docs)
        bar = progress_bar(total=total_windows, desc=f"cache {teacher.name}", unit="window", leave=False,
                           disable=not self.progress)
        try:
            subset = [sequences[d] for d in wanted_docs]
            for window, log_probs, targets in window_log_probs(teacher, subset, self.batch_size, bar):
                doc = wanted_docs[window.document]
                ids, spans = encoded[doc]
                if bos is not None:
                    positions = np.arange(window.first - 1, window.end - 1)  # sequence index j predicts token j - 1
                else:
                    positions = np.arange(window.first, window.end)
                rows = self._rows(log_probs, targets, spans, positions, vocab, bits)
                if bos is None and window.first == 1:  # the first token: a uniform guess
                    rows = _concat([self._uniform_first(ids, spans, vocab, bits), rows])
                    positions = np.concatenate([[0], positions])
                self._route(rows, offsets[doc] + positions, buffers, ranges, key)
        finally:
            bar.close()
        leftover = [i for i, parts in buffers.items() if parts]
        if leftover:
            raise RuntimeError(f"cache shards {leftover} were not completed")  # a bug: every token is scored once

    def _rows(self, log_probs, targets, spans, positions, vocab, bits) -> dict[str, np.ndarray]:
        starts = np.where(positions > 0, spans[np.maximum(positions - 1, 0), 0], 0)
        return compress(log_probs, targets, spans[positions], starts, self.k, bits)

    def _uniform_first(self, ids, spans, vocab, bits) -> dict[str, np.ndarray]:
        log_probs = torch.full((1, vocab), -math.log(vocab))
        return compress(log_probs, ids[:1], spans[:1], np.zeros(1, np.int64), self.k, bits)

    def _route(self, rows, token_index, buffers, ranges, key) -> None:
        shards = token_index // SHARD_TOKENS
        for shard in np.unique(shards):
            if int(shard) not in buffers:
                continue
            pick = shards == shard
            buffers[int(shard)].append({name: value[pick] for name, value in rows.items()})
            start, stop = ranges[int(shard)]
            if sum(len(p["nll"]) for p in buffers[int(shard)]) == stop - start:
                arrays = _concat(buffers[int(shard)])
                arrays["span_step"] = _small_uint(arrays["span_step"])
                arrays["span_len"] = _small_uint(arrays["span_len"])
                self.store.write_shard(key, int(shard), start, stop, arrays)
                buffers[int(shard)] = []

    def entry_bytes(self, key: str) -> int:
        folder = self.store.entry_dir(key)
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def load(self, teacher, split: TextSplit) -> TopKTargets:
        """The teacher's cached distributions on the split (it must have been cached: see :meth:`ensure`)."""
        key = self.key(teacher, split)
        info = self.store.read_entry_info(key)
        if info is None:
            info = self.ensure(teacher, split)
        parts = [self.store.read_shard(key, i, a, b) for i, (a, b) in enumerate(_ranges(info["n"], info["shard_tokens"]))]
        arrays = _concat(parts)
        k = arrays["logp"].shape[1]
        ids = unpack_ids(arrays["ids"], k, info["id_bits"])
        spans = _spans(arrays["span_step"].astype(np.int64), arrays["span_len"].astype(np.int64), info["doc_tokens"])
        return TopKTargets(torch.from_numpy(ids), torch.from_numpy(arrays["logp"].astype(np.float32)),
                           torch.from_numpy(arrays["tail_logp"].astype(np.float32)), spans, info["doc_tokens"],
                           info["vocab_size"], info, torch.from_numpy(arrays["nll"].astype(np.float32)))


def _spans(steps: np.ndarray, lengths: np.ndarray, doc_tokens: list[int]) -> np.ndarray:
    starts = np.empty_like(steps)
    offset = 0
    for count in doc_tokens:
        starts[offset:offset + count] = np.cumsum(steps[offset:offset + count])
        offset += count
    return np.stack([starts, starts + lengths], axis=1)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _ranges(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def teacher_token_logp(ids: torch.Tensor, logp: torch.Tensor, tail_logp: torch.Tensor, tokens: torch.Tensor,
                       vocab_size: int) -> torch.Tensor:
    """log p_teacher(token) [N] from cached rows (ids [N, k], logp [N, k], tail_logp [N]) for tokens [N]: the
    cached log-probability where the token is among the k ids, else the tail mass spread evenly over the other
    V - k ids (the cache's own reconstruction)."""
    match = ids == tokens[:, None]
    cached = (logp.float() * match).sum(dim=1)
    spread = tail_logp.float() - math.log(max(vocab_size - ids.shape[1], 1))
    return torch.where(match.any(dim=1), cached, spread)
