"""Domain-reweighted sampling (DDK) for a target text that mixes domains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from xdistill.kinds import load_task
from xdistill.kinds.language_modeling.data import token_stream, window_batches
from xdistill.kinds.language_modeling.domains import SMOOTHING, domain_weights
from xdistill.kinds.language_modeling.task import write_lm_task
from xdistill.models.tokenizer import load_tokenizer

from .conftest import STUDENT_KNOBS, code_documents, prose_documents


@pytest.fixture
def mixed_task(tmp_path):
    train = code_documents(8, 11) + prose_documents(8, 12)
    return write_lm_task(tmp_path / "mixed", "mixed", train, code_documents(3, 13) + prose_documents(3, 14),
                         train_domains=["code"] * 8 + ["prose"] * 8)


def test_weights_follow_the_student_to_teacher_loss_ratio_with_a_uniform_share():
    weights = domain_weights(np.array([2.0, 3.0, 1.0]), np.array([1.0, 1.0, 1.0]))
    soft = np.exp([2.0, 3.0, 1.0]) / np.exp([2.0, 3.0, 1.0]).sum()
    np.testing.assert_allclose(weights, (1 - SMOOTHING) * soft + SMOOTHING / 3, rtol=1e-12)
    assert weights.sum() == pytest.approx(1.0) and weights.argmax() == 1


def test_windows_are_drawn_from_the_weighted_domains(mixed_task, lm_world):
    task = load_task(mixed_task)
    assert task.splits["train"].domains == ["code"] * 8 + ["prose"] * 8
    stream = token_stream(task.splits["train"].documents, load_tokenizer(lm_world.tokenizer))
    doc_domain = np.array([0] * 8 + [1] * 8)
    batch = window_batches(stream, 16, 64, 0, 0, doc_domain, np.array([1.0, 0.0]))(0)
    assert batch["ids"].shape == (64, 16)
    # every window starts inside a code document
    for row in batch["ids"]:
        found = [s for s in range(len(stream.ids) - 16) if (stream.ids[s:s + 16] == row.numpy()).all()]
        assert found and doc_domain[stream.docs[found[0]]] == 0


def test_weighted_with_domain_sampling_logs_each_epochs_weights(mixed_task, lm_world, tmp_path):
    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(mixed_task), "--zoo", str(lm_world.zoo), "--method", "weighted",
                   "--out", str(out), "--cache", str(tmp_path / "cache"), "--epochs", "2", "progress=false",
                   "domain_sampling=true", *[f"student.knobs.{k}={v}" for k, v in STUDENT_KNOBS.items()]) == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    for record in history:
        decided = record["decisions"]
        assert decided["domains"] == ["code", "prose"]
        assert sum(decided["domain_weights"]) == pytest.approx(1.0)
        ratio = np.array(decided["student_nll"]) / np.array(decided["teacher_nll"])
        assert np.argmax(decided["domain_weights"]) == np.argmax(ratio)


def test_domain_sampling_needs_teachers_and_domains(lm_world, tmp_path, capsys):
    common = ["--zoo", str(lm_world.zoo), "--out", str(tmp_path / "r"), "domain_sampling=true", "progress=false"]
    assert run_cli("distill", "--task", str(lm_world.task), "--method", "supervised",
                   f"tokenizer={lm_world.tokenizer}", *common) == 2
    assert "method 'supervised' has none" in capsys.readouterr().err.replace("\n", " ")
    assert run_cli("distill", "--task", str(lm_world.task), "--method", "nearest", "--epochs", "1",
                   "--cache", str(tmp_path / "cache"), *common) == 2
    assert "needs train documents from two or more domains" in capsys.readouterr().err.replace("\n", " ")
