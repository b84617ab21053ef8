"""Teachers against the student for language models: the held-out tail, the share formula, the hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xdistill.kinds.language_modeling import trust
from xdistill.kinds.language_modeling.data import TokenStream, window_batches
from xdistill.kinds.language_modeling.steps import StepContext
from xdistill.models.tokenizer import train_bpe
from tests.conftest import run_cli

from .conftest import STUDENT_KNOBS, code_documents


def test_share_follows_the_teachers_lead_over_the_student():
    # clip((s - t) / (margin * t), 0, 1), computed by hand
    assert trust.distillation_share(2.2, 2.0, 0.05) == 1.0  # lead 10% >= margin 5%
    assert trust.distillation_share(2.05, 2.0, 0.05) == pytest.approx(0.5, abs=1e-12)  # lead 2.5% = half the margin
    assert trust.distillation_share(1.9, 2.0, 0.05) == 0.0  # the student predicts better than the teachers
    assert trust.distillation_share(float("nan"), 2.0, 0.05) == 0.0


def test_the_held_out_tail_decodes_to_the_end_of_the_text():
    docs = code_documents(40, 3)
    tokenizer = train_bpe(docs, 300)
    encoded = [tokenizer.encode(d)[0] for d in docs]
    ids = np.concatenate([np.concatenate([[tokenizer.bos_id], e]) for e in encoded]).astype(np.int64)
    held = trust.held_out_tail(ids, tokenizer.bos_id, tokenizer.decode)
    assert held is not None and held.tokens == min(int(len(ids) * trust.HELD_OUT_SHARE), trust.HELD_OUT_TOKENS)
    assert held.cut == len(ids) - held.tokens
    # The pieces are the tail of the text, split at document starts: the last ones are whole documents.
    assert held.documents[-1] == docs[-1] and "".join(docs).endswith("".join(held.documents))
    assert trust.held_out_tail(ids[:50], tokenizer.bos_id, tokenizer.decode) is None  # too short to hold any out


def test_held_out_positions_are_not_trained_on():
    stream = TokenStream(np.arange(100, dtype=np.int64), np.arange(100, dtype=np.int64) - 1, [99])
    batch = window_batches(stream, 16, 64, seed=0, epoch=0, held_out_from=80)(0)
    positions = batch["targets"]  # ids equal their positions here
    assert ((batch["rows"] == -1) == (positions >= 80)).all()
    free = window_batches(stream, 16, 64, seed=0, epoch=0)(0)
    assert torch.equal(free["ids"], batch["ids"]) and (free["rows"] >= 0).all()


def test_the_hook_switches_distillation_off_once_the_student_is_better_and_keeps_the_last_decision():
    ctx = StepContext(kd_weight=1.0)
    scores = iter([3.0, 2.05, 1.5, 2.5])
    hook = trust.teachers_against_student(ctx, lambda student: next(scores), teacher_bpb=2.0, kd_weight=2.0,
                                          margin=0.05, epochs=6)
    history: list[dict] = []
    shares = []
    for epoch in range(6):
        decision = hook(None, epoch, history)
        history.append({"epoch": epoch + 1, "decisions": decision})
        shares.append((decision["share"], ctx.kd_weight, decision["held_out"]))
    assert trust.rejoin_epoch(6) == 4  # epochs 0-3 (0-based) measure the student, 4 and 5 train on the tail too
    assert shares[:4] == [(1.0, 2.0, "measured"), (pytest.approx(0.5), pytest.approx(1.0), "measured"),
                          (0.0, 0.0, "measured"), (1.0, 2.0, "measured")]
    assert shares[4:] == [(1.0, 2.0, "rejoined")] * 2  # the last measured decision holds


def test_teacher_methods_record_their_decisions(lm_world, tmp_path):
    knobs = [f"student.knobs.{k}={v}" for k, v in STUDENT_KNOBS.items()]
    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--method", "nearest",
                   "--out", str(out), "--cache", str(lm_world.cache), "--epochs", "3", "progress=false",
                   *knobs) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["anneal"]["rejoin_epoch"] == 3 and metrics["anneal"]["held_out_tokens"] >= trust.MIN_HELD_OUT_TOKENS
    decisions = [record["decisions"] for record in metrics["history"]]
    assert [d["held_out"] for d in decisions] == ["measured", "measured", "rejoined"]
    assert all(0.0 <= d["share"] <= 1.0 for d in decisions)
    off = tmp_path / "off"
    assert run_cli("distill", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--method", "nearest",
                   "--out", str(off), "--cache", str(lm_world.cache), "--epochs", "2", "progress=false",
                   "anneal=false", *knobs) == 0
    assert "anneal" not in json.loads((off / "metrics.json").read_text())
