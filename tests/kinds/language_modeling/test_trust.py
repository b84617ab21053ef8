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
    # clip(1 + (s - t) / (margin * t), 0, 1), computed by hand
    assert trust.distillation_share(2.2, 2.0, 0.05) == 1.0  # the teachers lead
    assert trust.distillation_share(2.0, 2.0, 0.05) == 1.0  # as good as the student: they still teach
    assert trust.distillation_share(1.95, 2.0, 0.05) == pytest.approx(0.5, abs=1e-12)  # the student leads by 2.5%
    assert trust.distillation_share(1.9, 2.0, 0.05) == 0.0  # the student leads by the margin (5%)
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
    stream = TokenStream(np.arange(100, dtype=np.int64), np.arange(100, dtype=np.int64) - 1, [99],
                         np.zeros(100, dtype=np.int64))
    batch = window_batches(stream, 16, 64, seed=0, epoch=0, held_out_from=80)(0)
    positions = batch["targets"]  # ids equal their positions here
    assert ((batch["rows"] == -1) == (positions >= 80)).all()
    free = window_batches(stream, 16, 64, seed=0, epoch=0)(0)
    assert torch.equal(free["ids"], batch["ids"]) and (free["rows"] >= 0).all()


def _run_hook(scores, epochs=6):
    ctx, state = StepContext(kd_weight=1.0), trust.AnnealState()
    values = iter(scores)
    hook = trust.teachers_against_student(ctx, lambda student: next(values), teacher_bpb=2.0, kd_weight=2.0,
                                          margin=0.05, epochs=epochs, state=state)
    history: list[dict] = []
    seen = []
    for epoch in range(epochs):
        decision = hook(None, epoch, history)
        history.append({"epoch": epoch + 1, "decisions": decision})
        seen.append((decision["share"], ctx.kd_weight, decision["held_out"], state.holding_out))
    return seen


def test_the_hook_follows_the_lead_then_keeps_the_last_decision_once_the_tail_rejoins():
    assert trust.rejoin_epoch(6) == 4  # epochs 0-3 (0-based) may measure the student, 4 and 5 train on the tail too
    seen = _run_hook([3.0, 1.95, 1.98, 2.5])
    assert seen[:4] == [(1.0, 2.0, "measured", True), (pytest.approx(0.5), pytest.approx(1.0), "measured", True),
                        (pytest.approx(0.8), pytest.approx(1.6), "measured", True), (1.0, 2.0, "measured", True)]
    assert seen[4:] == [(1.0, 2.0, "rejoined", False)] * 2  # the last measured decision holds


def test_once_the_student_is_as_good_as_the_teachers_distillation_stops_for_good_and_the_tail_rejoins():
    seen = _run_hook([3.0, 1.8])  # only two measurements: the second one is final
    assert seen[0] == (1.0, 2.0, "measured", True)
    assert seen[1:] == [(0.0, 0.0, "rejoined", False)] * 5
    # A student already better than the teachers at the start trains on all its text from the first epoch.
    assert _run_hook([1.5]) == [(0.0, 0.0, "rejoined", False)] * 6


def test_teacher_methods_record_their_decisions(lm_world, tmp_path):
    knobs = [f"student.knobs.{k}={v}" for k, v in STUDENT_KNOBS.items()]
    out = tmp_path / "run"
    assert run_cli("distill", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--method", "nearest",
                   "--out", str(out), "--cache", str(lm_world.cache), "--epochs", "3", "progress=false",
                   *knobs) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["anneal"]["rejoin_epoch"] == 3 and metrics["anneal"]["held_out_tokens"] >= trust.MIN_HELD_OUT_TOKENS
    decisions = [record["decisions"] for record in metrics["history"]]
    assert decisions[-1]["held_out"] == "rejoined"  # the last third trains on the tail in any case
    assert all(0.0 <= d["share"] <= 1.0 for d in decisions)
    off = tmp_path / "off"
    assert run_cli("distill", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--method", "nearest",
                   "--out", str(off), "--cache", str(lm_world.cache), "--epochs", "2", "progress=false",
                   "anneal=false", *knobs) == 0
    assert "anneal" not in json.loads((off / "metrics.json").read_text())
