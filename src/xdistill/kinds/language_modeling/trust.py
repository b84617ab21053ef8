"""Teachers against the student, for language models (``anneal``, on by default, as for classification).

A teacher trained on another domain can predict the target worse than the student learns to, and distilling
it then costs the student: on numpy's C headers a C++ teacher scores 3.85 bits per byte, and a student
distilled from it ends at 1.74 against 1.60 fine-tuned alone. Teacher methods weigh the teachers against the
student twice:

- before training, per teacher: the student is scored as it starts (from its ``init=``, or fresh) on the
  target's train text, which it has not trained on yet, and only the chosen teachers whose bits per byte on
  that text (their ranking scores) are lower are distilled, their weights renormalised (:func:`teachers_ahead`);
  a method left with none trains exactly as its baseline does;
- in every step, per token: the distillation term applies only at positions where the teachers give the
  actual next token a higher probability than the student does
  (:func:`xdistill.kinds.language_modeling.topk.teacher_token_logp`), averaged over all scored positions, so it
  fades as the student passes the teachers and stays where they still know better. The share of such tokens
  is logged as the training term ``teacher_share``.

A per-epoch rule that stopped distilling once the student's held-out bits per byte passed the teachers'
gave most of the gain away on targets where a teacher behind the student still teaches (measured in
docs/benchmarks.md); per token, the teachers keep teaching what they know better.
"""

from __future__ import annotations

import math


def teachers_ahead(student_bpb: float, teacher_bpb: dict[str, float]) -> tuple[list[str], list[str]]:
    """(teachers whose bits per byte are below the student's starting ``student_bpb``, the others), in order."""
    ahead = [name for name, bpb in teacher_bpb.items() if math.isfinite(bpb) and bpb < student_bpb]
    return ahead, [name for name in teacher_bpb if name not in ahead]


__all__ = ["teachers_ahead"]
