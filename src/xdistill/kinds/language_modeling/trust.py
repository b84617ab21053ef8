"""Teachers against the student, for language models.

A teacher trained on another domain can predict the target worse than the student learns to on its
own; distilling it then costs the student (a C++ teacher at 3.9 bits per byte on C headers, where a
fine-tuned student reaches 1.6). So, as for classification (``anneal``, on by default), each teacher
method weighs its teachers against the student before every epoch:

- teachers: the chosen teachers' bits per byte on the target's train text (their ranking scores: text
  they never trained on), mixed by the method's weights (a weighted mean, which bounds the mixture's
  bits per byte from above);
- student: its bits per byte on a held-out tail of the train text (:data:`HELD_OUT_SHARE` of the
  student's tokens, at most :data:`HELD_OUT_TOKENS`), whose positions are left out of the loss until
  :data:`REJOIN` of the epochs have run; then they rejoin training and the last decision holds;
- the epoch's distillation weight ``kd_weight * w``, ``w = clip(1 + (s - t) / (margin * t), 0, 1)``: full
  distillation while the teachers predict the target at least as well as the student does (a teacher
  as good as the student still teaches through its soft targets), none once the student leads them by
  ``anneal_margin`` (relative), linear in between. A share of none is
  final: the student only gets better at the target, the teachers do not, so from that epoch on the
  tail rejoins training and the run continues as its baseline would (a student that starts from a
  generic init already better than every teacher trains exactly like ``finetune``).

Each epoch's decision is recorded in the run's history (``decisions``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HELD_OUT_SHARE = 0.1  # of the student's train tokens, held out to measure the student
HELD_OUT_TOKENS = 8_192  # at most this many
MIN_HELD_OUT_TOKENS = 64  # below this, the text is too short to hold any out: no annealing
REJOIN = 2 / 3  # share of the epochs after which the held-out tail rejoins training


@dataclass
class HeldOut:
    cut: int  # stream positions >= cut are held out (their targets are not trained on)
    documents: list[str]  # the held-out text, one piece per (part of a) document, scored by the student
    tokens: int


def held_out_tail(ids: np.ndarray, bos_id: int, decode) -> HeldOut | None:
    """The tail of the student's token stream ``ids`` [L] (BOS before each document) to hold out, decoded
    into text pieces split at BOS; None when the stream is too short."""
    n = len(ids)
    size = min(int(n * HELD_OUT_SHARE), HELD_OUT_TOKENS)
    if size < MIN_HELD_OUT_TOKENS:
        return None
    cut = n - size
    pieces, start = [], cut
    for position in [*np.flatnonzero(ids[cut:] == bos_id) + cut, n]:
        if position > start:
            pieces.append(decode(ids[start:position].tolist()))
        start = position + 1
    pieces = [p for p in pieces if p]
    return HeldOut(cut, pieces, size) if pieces else None


def distillation_share(student_bpb: float, teacher_bpb: float, margin: float) -> float:
    """``clip(1 + (s - t) / (margin * t), 0, 1)``: 1 while the teachers are at least as good as the student,
    0 once the student leads them by ``margin`` (relative)."""
    if not (math.isfinite(student_bpb) and math.isfinite(teacher_bpb)) or teacher_bpb <= 0:
        return 0.0
    return float(np.clip(1.0 + (student_bpb - teacher_bpb) / (margin * teacher_bpb), 0.0, 1.0))


def rejoin_epoch(epochs: int) -> int:
    """The first epoch in which the held-out tail is trained on again."""
    return max(1, math.ceil(REJOIN * epochs))


@dataclass
class AnnealState:
    holding_out: bool = True  # whether this epoch leaves the held-out tail out of the loss


def teachers_against_student(ctx, score_student, teacher_bpb: float, kd_weight: float, margin: float, epochs: int,
                             state: AnnealState | None = None):
    """The loop's ``before_epoch`` hook: sets ``ctx.kd_weight`` and ``state.holding_out`` for the epoch and
    returns the decision. It depends only on the student, the epoch and the history, so a resumed run
    decides the same.

    score_student(student) -> the student's bits per byte on the held-out text.
    """
    rejoin = rejoin_epoch(epochs)
    state = state if state is not None else AnnealState()

    def before_epoch(student, epoch: int, history: list[dict]) -> dict:
        made = [r["decisions"] for r in history if "decisions" in r]
        final = any(d["share"] == 0.0 for d in made)
        if (epoch < rejoin and not final) or not made:
            s = score_student(student)
            share = distillation_share(s, teacher_bpb, margin)
            decision = {"student_bits_per_byte": s, "teacher_bits_per_byte": teacher_bpb, "share": share,
                        "held_out": "measured" if share > 0 and epoch < rejoin else "rejoined"}
        else:  # the tail trains again: the last measured decision holds
            decision = {**made[-1], "held_out": "rejoined"}
        state.holding_out = decision["held_out"] == "measured"
        ctx.kd_weight = kd_weight * decision["share"]
        return decision

    return before_epoch


__all__ = ["HELD_OUT_SHARE", "HELD_OUT_TOKENS", "REJOIN", "AnnealState", "HeldOut", "distillation_share", "held_out_tail",
           "rejoin_epoch", "teachers_against_student"]
