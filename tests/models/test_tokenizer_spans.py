"""Exact byte spans for every tokenizer kind (byte-level BPE, unigram with byte fallback, raw bytes), on text with
multi-byte characters, and properties over random Unicode text and random tokenizers (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdistill.models.tokenizer import byte_tokenizer, train_bpe, train_unigram

CORPUS = ["def f(x):\n    return x + 1\n", "The quick brown fox jumps over the lazy dog.", "日本語のテキストです。",
          "مرحبا بالعالم", "emoji 😀👍🏽 and 👨‍👩‍👧", "cafe\u0301 nai\u0308ve"] * 8
HARD = ["日本語 and English", "مرحبا", "😀👍🏽👨‍👩‍👧", "e\u0301\u0302 a\u030a", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "tab\there\r\nnew",
        "▁ leading spaces  ", "\u200b\ufeff zero-width", "x" * 50, "한국어 텍스트", ""]
TOKENIZERS = {"bpe": lambda: train_bpe(CORPUS, 300), "unigram": lambda: train_unigram(CORPUS, 120),
              "bytes": byte_tokenizer}


def assert_exact_spans(tokenizer, text: str) -> None:
    """The spans tile the text's UTF-8 bytes in order, and each token spells exactly the bytes of its span."""
    data = text.encode("utf-8")
    ids, spans = tokenizer.encode(text)
    assert spans.shape == (len(ids), 2)
    if len(ids) == 0:
        assert data == b""
        return
    assert spans[0, 0] == 0 and spans[-1, 1] == len(data)
    assert (spans[1:, 0] == spans[:-1, 1]).all() and (spans[:, 1] > spans[:, 0]).all()
    spelled = tokenizer.token_bytes()
    for token, (start, end) in zip(ids, spans):
        assert spelled[token] == data[start:end]


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tokenizer(request):
    return TOKENIZERS[request.param]()


@pytest.mark.parametrize("text", HARD)
def test_spans_are_exact_on_multibyte_text(tokenizer, text):
    assert_exact_spans(tokenizer, text)


def test_byte_fallback_tokens_split_a_character_into_its_bytes():
    tokenizer = train_unigram(["abc abc abc"] * 10, 20)
    ids, spans = tokenizer.encode("a😀")
    assert spans.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]  # 😀 is 4 bytes, none in the vocabulary
    assert tokenizer.decode(ids) == "a😀"


def test_a_unigram_vocabulary_smaller_than_its_alphabet_is_refused_by_name():
    from xdistill.errors import XDistillError

    with pytest.raises(XDistillError, match="'vocab_size' must be > 3"):
        train_unigram(["abc"], 3)


def test_raw_bytes_have_one_token_a_byte():
    tokenizer = byte_tokenizer()
    assert tokenizer.vocab_size == 257 and tokenizer.bos_id is not None
    ids, spans = tokenizer.encode("é😀")
    assert len(ids) == 6 and (spans[:, 1] - spans[:, 0] == 1).all()


unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(corpus=st.lists(unicode_text, min_size=1, max_size=6), kind=st.sampled_from(["bpe", "unigram", "bytes"]),
       size=st.integers(0, 120), text=unicode_text)
def test_spans_are_exact_for_random_tokenizers_on_random_text(corpus, kind, size, text):
    if kind == "bpe":
        tokenizer = train_bpe(corpus, 257 + size)
    elif kind == "unigram":
        tokenizer = train_unigram(corpus + ["a"], len(set("".join(corpus + ["a"]))) + 2 + size)
    else:
        tokenizer = byte_tokenizer()
    assert_exact_spans(tokenizer, text)
    assert tokenizer.decode(tokenizer.encode(text)[0]) == text


def test_token_bytes_name_special_tokens_none(tokenizer):
    spelled = tokenizer.token_bytes()
    assert spelled[tokenizer.bos_id] is None
    assert all(isinstance(s, bytes) and s for s in spelled if s is not None)
    assert {bytes([b]) for b in range(256)} <= set(spelled)  # every byte can be spelled: lossless on any text
