"""A word-level tokenizer for text students: lowercase, split into words,
map each word to an id from a vocabulary fitted on the task's own texts.

    tokenizer = fit_tokenizer(task)              # labeled + unlabeled texts, never test
    tokens = tokenizer.encode(["The match ended 2-1."])   # LongTensor [1, max_length]
    meta = tokenizer.describe()                  # saved in student.json
    same = tokenizer_from_meta(meta)             # the tokenizer a saved student needs

Id 0 is padding and id 1 an out-of-vocabulary word; the other ids go to the
most frequent words (ties broken alphabetically), so fitting is deterministic.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import torch

from xdistill.data.task import Task
from xdistill.errors import XDistillError

PAD_ID = 0
UNKNOWN_ID = 1
SPECIAL_TOKENS = ("[PAD]", "[UNK]")
# Runs of letters or digits, keeping an inner apostrophe ("don't", "chef's").
WORD_PATTERN = r"[^\W_]+(?:'[^\W_]+)*"
_WORDS = re.compile(WORD_PATTERN)


def split_words(text: str) -> list[str]:
    """Lowercased words of ``text``, in order."""
    return _WORDS.findall(text.lower())


class WordTokenizer:
    """Words -> ids over a fixed vocabulary; ``vocab[i]`` is the word with id ``i``."""

    def __init__(self, vocab: list[str], max_length: int) -> None:
        self.vocab = list(vocab)
        self.max_length = max_length
        self._ids = {word: i for i, word in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        """Number of ids, padding and unknown included."""
        return len(self.vocab)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """texts (N strings) -> LongTensor [N, max_length], truncated and padded with 0."""
        tokens = torch.full((len(texts), self.max_length), PAD_ID, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self._ids.get(word, UNKNOWN_ID) for word in split_words(str(text))[: self.max_length]]
            if ids:
                tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return tokens

    def describe(self) -> dict:
        """Everything needed to rebuild this tokenizer (JSON-able)."""
        return {"tokenizer": "word", "lowercase": True, "pattern": WORD_PATTERN,
                "vocab_size": self.vocab_size, "max_length": self.max_length, "vocab": list(self.vocab)}


def fit_vocabulary(texts: Iterable[str], max_vocab: int) -> list[str]:
    """The special tokens, then the ``max_vocab - 2`` most frequent words."""
    counts = Counter(word for text in texts for word in split_words(str(text)))
    words = sorted(counts, key=lambda w: (-counts[w], w))[: max_vocab - len(SPECIAL_TOKENS)]
    return [*SPECIAL_TOKENS, *words]


def fit_tokenizer(task: Task, max_vocab: int = 20000, max_length: int = 64) -> WordTokenizer:
    """A tokenizer fitted on the labeled and unlabeled texts of a text task.

    max_vocab: ids in all, padding and unknown included (>= 3; 5k-50k typical).
    max_length: tokens kept per text; longer texts are truncated (16-512).
    """
    problems = []
    if task.input != "text":
        problems.append(f"task '{task.name}' has input '{task.input}', not 'text'")
    if not isinstance(max_vocab, int) or max_vocab < len(SPECIAL_TOKENS) + 1:
        problems.append(f"'max_vocab' must be an int >= {len(SPECIAL_TOKENS) + 1}. Got {max_vocab!r}")
    if not isinstance(max_length, int) or max_length < 1:
        problems.append(f"'max_length' must be an int >= 1. Got {max_length!r}")
    if problems:
        raise XDistillError("Cannot fit a tokenizer: " + "; ".join(problems) + ".")
    texts = [*task.labeled.x, *task.unlabeled.x]
    return WordTokenizer(fit_vocabulary(texts, max_vocab), max_length)


def tokenizer_from_meta(preprocessing: dict) -> WordTokenizer:
    """The tokenizer described by ``describe()`` (the 'preprocessing' of a saved student)."""
    missing = [key for key in ("vocab", "max_length") if key not in preprocessing]
    if missing:
        raise XDistillError(
            f"The saved student's preprocessing has no {', '.join(repr(k) for k in missing)} "
            f"(found: {', '.join(preprocessing) or 'nothing'}). Re-run distill to save a complete student.json."
        )
    kind = preprocessing.get("tokenizer", "word")
    if kind != "word":
        raise XDistillError(f"The saved student uses tokenizer '{kind}'; this version of xdistill reads 'word' only.")
    vocab, max_length = preprocessing["vocab"], preprocessing["max_length"]
    if not isinstance(vocab, list) or list(vocab[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
        raise XDistillError(f"The saved student's vocabulary must be a list starting with {list(SPECIAL_TOKENS)}.")
    if "vocab_size" in preprocessing and preprocessing["vocab_size"] != len(vocab):
        raise XDistillError(
            f"The saved student's 'vocab_size' is {preprocessing['vocab_size']} "
            f"but its vocabulary holds {len(vocab)} words."
        )
    if not isinstance(max_length, int) or max_length < 1:
        raise XDistillError(f"The saved student's 'max_length' must be an int >= 1. Got {max_length!r}.")
    return WordTokenizer(vocab, max_length)
