"""The LM demo world's corpora: fixed, sorted selections of text that ships with Python and torch."""

from __future__ import annotations

import pytest

from xdistill.demo.lm_world import DOCUMENT_BYTES, DOMAINS, PROBES, STUDENT_KNOBS, TARGETS, TEACHER_KNOBS, corpus, split_target


@pytest.mark.parametrize("name", [*DOMAINS, *TARGETS, *PROBES])
def test_each_corpus_is_deterministic_and_cut_into_small_documents(name):
    first, second = corpus(name), corpus(name)
    assert first == second and first
    assert all(0 < len(d.encode()) <= DOCUMENT_BYTES + 2000 for d in first)  # one long line may overrun a piece


@pytest.mark.parametrize("name", TARGETS)
def test_targets_have_a_little_train_text_and_a_disjoint_test(name):
    train, test = split_target(corpus(name))
    assert 35_000 <= sum(len(d.encode()) for d in train) <= 50_000
    assert 15_000 <= sum(len(d.encode()) for d in test) <= 30_000
    assert not set(train) & set(test)


def test_teachers_are_at_least_four_times_the_student():
    from xdistill.models.gpt import GPT, GPTConfig

    def size(knobs):
        return sum(p.numel() for p in GPT(GPTConfig(vocab_size=2048, **knobs)).parameters())

    assert size(TEACHER_KNOBS) >= 4 * size(STUDENT_KNOBS)
