"""Teachers against the student, for language models: a teacher that predicts the target worse than the
student already does before training is not distilled.

A teacher trained on another domain can predict the target worse than the student, and distilling it then
costs the student (on numpy's C headers a C++ teacher scores 3.85 bits per byte where the generic student
starts at 2.4: distilled, the student ends at 1.74 against 1.60 fine-tuned alone). Before training, each
teacher method (with ``anneal``, on by default, as for classification) scores the student as it starts (from
its ``init=``, or fresh) on the target's train text, which it has not trained on yet, and keeps only the
teachers whose bits per byte on that same text (their ranking scores) are lower; their weights are
renormalised. When none is left the run trains as its baseline does (next-token cross-entropy alone), so a
method never distils a teacher that is behind the student's starting point.

A teacher a little behind the student can still help through its soft targets, and one ahead of the student
at the start stays useful while the student passes it (on the demo's targets a teacher at 2.42 bits per byte
takes students that end near 2.13 from 2.21 fine-tuned alone), so the rule looks at the start only.
"""

from __future__ import annotations

import math


def teachers_ahead(student_bpb: float, teacher_bpb: dict[str, float]) -> tuple[list[str], list[str]]:
    """(teachers whose bits per byte are below the student's starting ``student_bpb``, the others), in order."""
    ahead = [name for name, bpb in teacher_bpb.items() if math.isfinite(bpb) and bpb < student_bpb]
    return ahead, [name for name in teacher_bpb if name not in ahead]


__all__ = ["teachers_ahead"]
