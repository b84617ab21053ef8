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


def test_demo_world_lm_exports_a_zoo_tokenizer_generic_student_and_tasks(tmp_path, monkeypatch):
    """The build recipe at a toy budget (the real one takes minutes): everything the export promises is there."""
    import yaml

    from tests.conftest import run_cli
    from xdistill.demo import lm_world
    from xdistill.kinds import load_task
    from xdistill.teachers import load_zoo

    monkeypatch.setattr(lm_world, "CORPUS_BYTES", 20_000)
    monkeypatch.setattr(lm_world, "VOCAB_SIZE", 300)
    monkeypatch.setattr(lm_world, "TEACHER_STEPS", 2)
    monkeypatch.setattr(lm_world, "GENERIC_STEPS", 2)
    monkeypatch.setattr(lm_world, "BUILD_WORKERS", 1)
    monkeypatch.setattr(lm_world, "TEACHER_KNOBS", {"d_model": 16, "n_layer": 1, "n_head": 2, "context": 32})
    monkeypatch.setattr(lm_world, "STUDENT_KNOBS", {"d_model": 8, "n_layer": 1, "n_head": 2, "context": 32})
    assert run_cli("demo", "--world", "lm", "--home", str(tmp_path / "home"), "--export", str(tmp_path / "out")) == 0
    out = tmp_path / "out"
    zoo = yaml.safe_load((out / "zoo.yaml").read_text())
    assert [t["domain"] for t in zoo["teachers"]] == list(DOMAINS.values())
    assert all(getattr(t, "language_model", False) for t in load_zoo(out / "zoo.yaml").teachers())
    assert (out / "tokenizer.json").is_file() and (out / "generic-student.safetensors").is_file()
    for name in (*TARGETS, *PROBES):
        assert load_task(out / "tasks" / name).kind == "language-modeling"
    assert run_cli("demo", "--world", "lm", "--home", str(tmp_path / "home"), "--export", str(out)) == 2  # not empty
    assert run_cli("demo", "--world", "lm", "--home", str(tmp_path / "home"), "--out", str(tmp_path / "runs"),
                   "--quick") == 0
    finished = sorted(p.parent.name for p in (tmp_path / "runs").rglob("metrics.json"))
    assert finished == ["finetune-s0", "nearest-s0", "supervised-s0", "weighted-s0"]
