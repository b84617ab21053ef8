"""Tokenizers of causal language models, behind one small interface.

    tokenizer = load_tokenizer("tokenizer.json")      # a `tokenizers` byte-level BPE file
    ids, spans = tokenizer.encode("def f(x):")          # ids [n] int64, spans [n, 2] byte offsets
    tokenizer.decode(ids) == "def f(x):"

Every tokenizer reports, for each token, the byte span of the text it covers (UTF-8 offsets,
end exclusive): the cache keeps them so that later stages can align tokenizations, and bits per
byte never depend on them (they are counted on the text). ``identity`` names the vocabulary
(a hash of the token -> id map), so two tokenizers are the same when their identities are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from xdistill.errors import XDistillError

BOS = "<|bos|>"  # the document-start token of xdistill's own tokenizers


def vocabulary_identity(vocab: dict[str, int]) -> str:
    """A short hash of a token -> id map: equal for the same vocabulary, whatever file it came from."""
    text = json.dumps(sorted(vocab.items(), key=lambda item: item[1]), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def byte_offsets(text: str) -> np.ndarray:
    """[len(text) + 1] int64: the UTF-8 byte offset of each character position."""
    lengths = np.fromiter((len(c.encode("utf-8", "surrogatepass")) for c in text), dtype=np.int64, count=len(text))
    return np.concatenate([[0], np.cumsum(lengths)])


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's map from the printable stand-ins of byte-level BPE back to the bytes 0..255."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, codes)}


class BPETokenizer:
    """A ``tokenizers.Tokenizer`` (byte-level BPE, as :func:`train_bpe` writes) with byte spans."""

    def __init__(self, tokenizer, source: str = "") -> None:
        self.tokenizer = tokenizer
        self.source = source
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1
        self.bos_id = vocab.get(BOS)
        self.identity = vocabulary_identity(vocab)
        alphabet = byte_level_alphabet()
        self._byte_level = all(ch in alphabet for token in vocab if token != BOS for ch in token)
        lengths = np.zeros(self.vocab_size, dtype=np.int64)
        if self._byte_level:
            for token, index in vocab.items():
                lengths[index] = 0 if token == BOS else len(token)
        self._token_bytes = lengths
        self._fallback_bytes = fallback_tokens(vocab, self.vocab_size)

    def to_str(self) -> str:
        return self.tokenizer.to_str()

    def token_bytes(self) -> list[bytes | None]:
        """The bytes each id spells (None for special tokens such as BOS and ``<unk>``)."""
        special = {t.content for t in self.tokenizer.get_added_tokens_decoder().values()} | {BOS, "<unk>"}
        return spelled_bytes(self.tokenizer.get_vocab(with_added_tokens=True), self.vocab_size, special,
                             self._byte_level, self._fallback_bytes)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        ids = np.asarray(encoding.ids, dtype=np.int64)
        if self._byte_level:
            ends = np.cumsum(self._token_bytes[ids])
            if len(ids) == 0 or ends[-1] == len(text.encode("utf-8")):
                return ids, np.stack([ends - self._token_bytes[ids], ends], axis=1) if len(ids) else np.zeros((0, 2), np.int64)
        return ids, spans_from_offsets(ids, np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2), text,
                                       self._fallback_bytes)

    def encode_many(self, texts: Iterable[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)


def fallback_tokens(vocab: dict[str, int], vocab_size: int) -> np.ndarray:
    """[V] bool: the byte-fallback tokens ("<0xE4>"), each standing for one byte of a character the vocabulary lacks."""
    out = np.zeros(vocab_size, dtype=bool)
    for token, index in vocab.items():
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">") and index < vocab_size:
            out[index] = True
    return out


def spelled_bytes(vocab: dict[str, int], vocab_size: int, special: set[str], byte_level: bool,
                  fallback: np.ndarray) -> list[bytes | None]:
    """The bytes each id spells: byte-level BPE's printable stand-ins mapped back to bytes, byte-fallback tokens
    as their byte, other pieces as their UTF-8 text (SentencePiece's "▁" read as a space when no piece holds
    a plain space); None for special tokens."""
    out: list[bytes | None] = [None] * vocab_size
    alphabet = byte_level_alphabet()
    metaspace = not byte_level and any("▁" in t for t in vocab) and not any(" " in t for t in vocab)
    for token, index in vocab.items():
        if token in special or index >= vocab_size:
            continue
        if fallback[index]:
            out[index] = bytes([int(token[3:5], 16)])
        elif byte_level:
            out[index] = bytes(alphabet[ch] for ch in token)
        else:
            out[index] = (token.replace("▁", " ") if metaspace else token).encode("utf-8")
    return out


def spans_from_offsets(ids: np.ndarray, char_offsets: np.ndarray, text: str, fallback: np.ndarray) -> np.ndarray:
    """[n, 2] UTF-8 byte spans from a tokenizer's character offsets [n, 2].

    Byte-fallback tokens that spell out one character (or a run of characters the vocabulary lacks) all
    carry that run's character offsets; each of them covers one byte of it, in order, so the spans of a
    tokenization never overlap and a token may cover part of a character's UTF-8 bytes."""
    offsets = byte_offsets(text)
    spans = offsets[char_offsets] if len(ids) else np.zeros((0, 2), np.int64)
    if len(ids) < 2:
        return spans
    same = np.all(char_offsets[1:] == char_offsets[:-1], axis=1)
    if not same.any():
        return spans
    run_starts = np.flatnonzero(np.concatenate([[True], ~same]))
    run_ends = np.concatenate([run_starts[1:], [len(ids)]])
    for a, b in zip(run_starts, run_ends):
        if b - a < 2 or not fallback[ids[a:b]].all():
            continue
        first, last = spans[a]
        if last - first == b - a:  # one byte a token
            spans[a:b, 0] = np.arange(first, last)
            spans[a:b, 1] = spans[a:b, 0] + 1
    return spans


def load_tokenizer(path: str | Path) -> BPETokenizer:
    """Read a ``tokenizers`` JSON file."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise XDistillError(f"The tokenizer file '{path}' does not exist. Give a tokenizer.json written by the "
                            "`tokenizers` library (xdistill pretrain and the LM demo world write one).")
    try:
        return BPETokenizer(Tokenizer.from_file(str(path)), str(path))
    except Exception as exc:  # tokenizers raises plain Exceptions for malformed files
        raise XDistillError(f"'{path}' is not a tokenizer file the `tokenizers` library can read ({exc}).") from None


def tokenizer_from_string(text: str, source: str = "") -> BPETokenizer:
    from tokenizers import Tokenizer

    return BPETokenizer(Tokenizer.from_str(text), source)


def train_bpe(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    """A byte-level BPE tokenizer of ``vocab_size`` ids (the 256 bytes, merges and ``<|bos|>``), lossless
    on any UTF-8 text. Deterministic for the same texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return BPETokenizer(tokenizer, "trained")


def byte_tokenizer() -> BPETokenizer:
    """Raw bytes: the 256 byte values and ``<|bos|>`` (byte-level BPE without a merge)."""
    return train_bpe([], 257)


# Pre-tokens of the unigram tokenizer: a word with at most one leading space, or one other whitespace character.
UNIGRAM_PRE_TOKENS = r" ?[^\s]+|\s"


def train_unigram(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    """A unigram language-model tokenizer (Kudo 2018) of ``vocab_size`` pieces plus ``<|bos|>``, ``<unk>``
    and the 256 byte-fallback tokens ``<0x00>``..``<0xFF>``: a character outside its pieces is spelled
    out as its UTF-8 bytes, so it is lossless on any text. Deterministic for the same texts."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = list(texts)
    characters = len(set().union(*map(set, texts))) if texts else 0
    if vocab_size <= characters:
        raise XDistillError(f"A unigram tokenizer needs a piece for each of the {characters} distinct characters of its "
                            f"training text and more for longer pieces: 'vocab_size' must be > {characters}. "
                            f"Got {vocab_size}.")
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(UNIGRAM_PRE_TOKENS), behavior="isolated")
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=[BOS], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    raw = json.loads(tokenizer.to_str())
    model = raw["model"]
    lowest = min(score for _, score in model["vocab"])
    present = {piece for piece, _ in model["vocab"]}
    model["vocab"] += [[f"<0x{b:02X}>", lowest - 1.0] for b in range(256) if f"<0x{b:02X}>" not in present]
    model["vocab"].append(["<unk>", lowest - 2.0])
    model["unk_id"], model["byte_fallback"] = len(model["vocab"]) - 1, True
    return BPETokenizer(Tokenizer.from_str(json.dumps(raw)), "trained")
