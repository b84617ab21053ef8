"""Byte alignment of tokenizations, the cross-tokenizer target built from it, its training step, and tokenizer
transplantation by orthogonal matching pursuit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdistill.kinds.language_modeling.alignment import (
    chunk_lengths_at_ends,
    chunk_starts,
    document_chunks,
    shared_vocabulary,
)
from xdistill.kinds.language_modeling.cross_tokenizer import align_targets, cross_tokenizer_step
from xdistill.kinds.language_modeling.data import token_stream
from xdistill.kinds.language_modeling.steps import StepContext
from xdistill.kinds.language_modeling.topk import TopKTargets
from xdistill.kinds.language_modeling.transplant import omp, transplant_embeddings
from xdistill.models.tokenizer import byte_tokenizer, train_bpe, train_unigram

CORPUS = ["def f(x):\n    return x + 1\n", "The quick brown fox.", "日本語のテキスト", "مرحبا بالعالم",
          "emoji 😀👍🏽", "cafe\u0301"] * 8


@pytest.fixture(scope="module")
def tokenizers():
    return {"bpe": train_bpe(CORPUS, 320), "bpe-small": train_bpe(CORPUS, 270), "unigram": train_unigram(CORPUS, 120),
            "bytes": byte_tokenizer()}


def test_chunks_of_a_literal_example():
    # "abcdef": student "ab|cde|f", teacher "a|bc|d|ef": both end a token at 3? no (student 2, 5, 6; teacher 1, 3,
    # 4, 6): shared ends {6} -> one chunk; with teacher "ab|c|de|f" (2, 3, 5, 6): shared {2, 5, 6} -> 3 chunks.
    student = np.array([[0, 2], [2, 5], [5, 6]])
    one, [teacher_one], n_one = document_chunks(student, [np.array([[0, 1], [1, 3], [3, 4], [4, 6]])])
    assert n_one == 1 and one.tolist() == [0, 0, 0] and teacher_one.tolist() == [0, 0, 0, 0]
    chunks, [teacher], n = document_chunks(student, [np.array([[0, 2], [2, 3], [3, 5], [5, 6]])])
    assert n == 3 and chunks.tolist() == [0, 1, 2] and teacher.tolist() == [0, 1, 1, 2]
    assert chunk_lengths_at_ends(teacher).tolist() == [1, 0, 2, 1]
    assert chunk_starts(teacher).tolist() == [True, True, False, True]


unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=unicode_text, pair=st.permutations(["bpe", "bpe-small", "unigram", "bytes"]))
def test_chunks_hold_the_same_bytes_in_both_tokenizations(tokenizers, text, pair):
    data = text.encode("utf-8")
    spans = [tokenizers[name].encode(text)[1] for name in pair[:3]]
    student_chunks, teacher_chunks, n = document_chunks(spans[0], spans[1:])
    for chunks, span in zip([student_chunks, *teacher_chunks], spans):
        assert (np.diff(chunks) >= 0).all() and chunks[-1] == n - 1  # every chunk non-empty, in order
        pieces = [b"".join(data[a:b] for (a, b), c in zip(span, chunks) if c == k) for k in range(n)]
        assert b"".join(pieces) == data
        if chunks is student_chunks:
            reference = pieces
        else:
            assert pieces == reference  # each chunk is the same text under every tokenization
    ends = [set(s[:, 1].tolist()) for s in spans]
    assert n == len(ends[0] & ends[1] & ends[2])  # chunks end exactly at the shared token ends


def cached_rows(tokenizer, documents, seed=0, k=4):
    """Random but valid cached rows of a 'teacher' with ``tokenizer`` on ``documents``."""
    generator = torch.Generator().manual_seed(seed)
    encoded = [tokenizer.encode(d) for d in documents]
    n = sum(len(ids) for ids, _ in encoded)
    log_probs = torch.randn(n, tokenizer.vocab_size, generator=generator).log_softmax(dim=1)
    top, ids = log_probs.topk(k, dim=1)
    actual = torch.from_numpy(np.concatenate([ids for ids, _ in encoded]))
    nll = -log_probs.gather(1, actual[:, None]).squeeze(1)
    tail = torch.log1p(-top.exp().sum(dim=1))
    spans = np.concatenate([s for _, s in encoded])
    return TopKTargets(ids, top, tail, spans, [len(i) for i, _ in encoded], tokenizer.vocab_size, {}, nll)


def test_target_chunk_likelihoods_are_sums_of_the_teachers_token_log_probs(tokenizers):
    documents = ["def f(x): return 日本語", "mixed 😀 text"]
    student, teacher = tokenizers["bpe"], tokenizers["unigram"]
    stream = token_stream(documents, student)
    rows = cached_rows(teacher, documents)
    target = align_targets(stream, [rows], ["t"], [1.0], student, [teacher])
    offset = 0
    for d, document in enumerate(documents):
        s_spans = stream.spans[offset:offset + stream.doc_tokens[d]]
        t_first = sum(rows.doc_tokens[:d])
        t_spans = rows.spans[t_first:t_first + rows.doc_tokens[d]]
        t_nll = rows.nll[t_first:t_first + rows.doc_tokens[d]].double()
        for r in range(len(s_spans)):
            length = int(target.chunk_len[offset + r])
            if length:
                start, end = s_spans[r - length + 1, 0], s_spans[r, 1]
                inside = (t_spans[:, 0] >= start) & (t_spans[:, 1] <= end)
                assert float(target.chunk_logp[offset + r]) == pytest.approx(-float(t_nll[inside].sum()), abs=1e-4)
            row = int(target.teachers[0].row_at[offset + r])
            if row >= 0:
                assert rows.spans[row, 0] == s_spans[r, 0]  # same prefix for both next-token predictions
        offset += stream.doc_tokens[d]
    assert int(target.chunk_len.sum()) == sum(stream.doc_tokens)  # every student token in one chunk


def test_two_teachers_mix_chunk_likelihoods_by_weight(tokenizers):
    documents = ["weighted chunks 日本"]
    student = tokenizers["bpe"]
    stream = token_stream(documents, student)
    a, b = cached_rows(tokenizers["unigram"], documents, 1), cached_rows(tokenizers["bytes"], documents, 2)
    mixed = align_targets(stream, [a, b], ["a", "b"], [3.0, 1.0], student, [tokenizers["unigram"], tokenizers["bytes"]])
    ends = torch.nonzero(mixed.chunk_len).squeeze(1)
    assert len(ends) >= 1 and mixed.info["weights"] == [0.75, 0.25]
    # The last chunk ends at the document's end: its likelihood is the mixture of each teacher's whole-text product.
    last = int(ends[-1])
    s_first = int(last - mixed.chunk_len[last] + 1)
    start = stream.spans[s_first, 0]
    parts = [-float(t.nll[torch.from_numpy(t.spans[:, 0] >= start)].double().sum()) for t in (a, b)]
    expected = math.log(0.75 * math.exp(parts[0]) + 0.25 * math.exp(parts[1]))
    assert float(mixed.chunk_logp[last]) == pytest.approx(expected, abs=1e-4)


class Fixed(torch.nn.Module):
    """A 'student' whose logits are a fixed table per position (what the step reads)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def token_logits(self, ids):
        return self.logits[: ids.shape[0], : ids.shape[1]]


@pytest.mark.parametrize("gate", [False, True])
@pytest.mark.parametrize("loss", ["alm", "uld", "shared_vocab"])
def test_the_step_gathers_the_chunks_of_a_window(tokenizers, loss, gate):
    documents = ["def f(x): return x", "🙂 and text"]
    student, teacher = tokenizers["bpe-small"], tokenizers["unigram"]
    stream = token_stream(documents, student)
    rows = cached_rows(teacher, documents)
    target = align_targets(stream, [rows], ["t"], [1.0], student, [teacher], loss)
    width = len(stream.ids) - 1
    batch = {"ids": torch.from_numpy(stream.ids[None, :-1]), "targets": torch.from_numpy(stream.ids[None, 1:]),
             "rows": torch.from_numpy(stream.rows[None, 1:])}
    model = Fixed(torch.randn(1, width, student.vocab_size, generator=torch.Generator().manual_seed(3)))
    ctx = StepContext(targets=target, cross_tokenizer_loss=loss, gate=gate)
    terms = cross_tokenizer_step(model, batch, ctx)
    assert terms["kd"] > 0 and torch.isfinite(terms["loss"])
    if loss == "alm" and not gate:  # the same loss computed chunk by chunk from the student's token log-probabilities
        from xdistill.losses.alm import alm_loss

        log_probs = model.logits[0].log_softmax(dim=1)
        token = log_probs.gather(1, batch["targets"][0, :, None]).squeeze(1)
        student_chunks, teacher_chunks = [], []
        for j in range(width):
            r = int(batch["rows"][0, j])
            length = int(target.chunk_len[r]) if r >= 0 else 0
            if length:
                student_chunks.append(token[j - length + 1:j + 1].sum())
                teacher_chunks.append(target.chunk_logp[r])
        scored = int((batch["rows"] >= 0).sum())
        expected = alm_loss(torch.stack(student_chunks), torch.stack(teacher_chunks))["loss"] * len(student_chunks) / scored
        assert terms["kd"].item() == pytest.approx(expected.item(), rel=1e-5)
    terms["loss"].backward()
    assert model.logits.grad.abs().sum() > 0


def test_agreeing_tokens_take_one_teachers_distribution(tokenizers):
    documents = ["def f(x): return x + 1", "日本語 text"]
    student = tokenizers["bpe"]
    stream = token_stream(documents, student)
    same, other = cached_rows(student, documents, 4), cached_rows(tokenizers["bytes"], documents, 5)
    alone = align_targets(stream, [same], ["same"], [1.0], student, [student], agreement=True)
    n = sum(stream.doc_tokens)
    assert alone.info["agreeing_tokens"] == n and (alone.agree_row == torch.arange(n)).all()
    assert torch.equal(alone.teachers[0].student_ids, same.ids)  # the same vocabulary maps onto itself
    both = align_targets(stream, [same, other], ["same", "bytes"], [0.5, 0.5], student, [student, tokenizers["bytes"]],
                         agreement=True)
    agreeing = both.agree_teacher >= 0
    # Only single-byte student tokens can be one token under the byte tokenizer too.
    lengths = torch.from_numpy(stream.spans[:, 1] - stream.spans[:, 0])
    assert (lengths[agreeing] == 1).all() and agreeing.sum() == ((lengths == 1).sum())
    for r in torch.nonzero(agreeing).squeeze(1).tolist():  # the teacher with the higher probability of the token
        pick = int(both.agree_teacher[r])
        probs = [-float(same.nll[r]), -float(other.nll[int(both.teachers[1].row_at[r])])]
        assert probs[pick] == max(probs)
    batch = {"ids": torch.from_numpy(stream.ids[None, :-1]), "targets": torch.from_numpy(stream.ids[None, 1:]),
             "rows": torch.from_numpy(stream.rows[None, 1:])}
    model = Fixed(torch.randn(1, batch["ids"].shape[1], student.vocab_size, generator=torch.Generator().manual_seed(6)))
    terms = cross_tokenizer_step(model, batch, StepContext(targets=alone, gate=False))
    assert terms["kd_chunks"] == 0 and terms["kd_agree"] > 0  # every chunk agrees: all token-level
    from xdistill.losses.topk import topk_forward_kl

    log_probs = model.logits[0].log_softmax(dim=1)
    rows = batch["rows"][0]
    scored = rows >= 0
    reference = topk_forward_kl(log_probs[scored], same.ids[rows[scored]], same.logp[rows[scored]],
                                same.tail_logp[rows[scored]], normalized=True)["loss"]
    assert terms["kd_agree"].item() == pytest.approx(reference.item(), rel=1e-5)


def test_the_gate_keeps_the_chunks_the_teacher_predicts_better(tokenizers):
    documents = ["def f(x): return x"]
    student, teacher = tokenizers["bpe"], tokenizers["bytes"]
    stream = token_stream(documents, student)
    rows = cached_rows(teacher, documents)
    target = align_targets(stream, [rows], ["t"], [1.0], student, [teacher])
    batch = {"ids": torch.from_numpy(stream.ids[None, :-1]), "targets": torch.from_numpy(stream.ids[None, 1:]),
             "rows": torch.from_numpy(stream.rows[None, 1:])}
    width = batch["ids"].shape[1]
    sure = torch.full((1, width, student.vocab_size), -30.0)
    sure[0, torch.arange(width), batch["targets"][0]] = 30.0  # the student is certain of every actual token
    terms = cross_tokenizer_step(Fixed(sure), batch, StepContext(targets=target, gate=True))
    assert terms["teacher_share"] == 0 and terms["kd"] == 0
    terms = cross_tokenizer_step(Fixed(-sure), batch, StepContext(targets=target, gate=True))
    assert terms["teacher_share"] == 1 and terms["kd"] > 0


def test_shared_vocabulary_maps_identical_spellings(tokenizers):
    student, teacher = tokenizers["bpe"], tokenizers["unigram"]
    mapping = shared_vocabulary(teacher, student)
    spelled_s, spelled_t = student.token_bytes(), teacher.token_bytes()
    mapped = np.flatnonzero(mapping >= 0)
    assert len(mapped) >= 200  # the single bytes at least
    assert all(spelled_t[t] == spelled_s[mapping[t]] for t in mapped)
    assert len(set(mapping[mapped].tolist())) == len(mapped)  # one teacher id per student id


def test_omp_recovers_a_sparse_combination():
    generator = torch.Generator().manual_seed(0)
    atoms = torch.randn(40, 16, generator=generator, dtype=torch.float64)
    targets = torch.stack([0.7 * atoms[3] - 1.2 * atoms[17], 2.0 * atoms[5]])
    index, coefficients = omp(targets, atoms, 3)
    first = dict(zip(index[0].tolist(), coefficients[0].tolist()))
    assert first[3] == pytest.approx(0.7, abs=1e-9) and first[17] == pytest.approx(-1.2, abs=1e-9)
    assert index[1, 0] == 5 and coefficients[1, 0] == pytest.approx(2.0, abs=1e-9)


def test_transplanted_embeddings_keep_shared_rows_and_combine_the_others():
    generator = torch.Generator().manual_seed(1)
    teacher = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    donor = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    donor[3] = 2 * donor[0] - donor[1]  # the one new token, exactly two shared ones in the donor's space
    mapping = np.array([0, 1, -1, 2, -1])  # teacher ids 0, 1, 3 are student ids 0, 1, 2
    out = transplant_embeddings(teacher, donor, mapping, 2)
    assert torch.equal(out[:3], teacher[[0, 1, 3]])
    assert torch.allclose(out[3], 2 * teacher[0] - teacher[1], atol=1e-9)
