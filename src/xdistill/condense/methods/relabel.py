"""``relabel``: soft labels from the zoo: the combined target-space predictions of the selected teachers.

The teachers are chosen and weighted as the ``weighted`` distillation method does (the ranking's
similarity weights over its top-k, gated per image: each image takes the calibrated prediction of the
teacher with the largest weight x confidence), and run live on the condensed images. Alone
(``--method relabel``), it relabels random real images, the comparison that shows how much of a
condensed set's gain the soft labels carry.
"""

from __future__ import annotations

import numpy as np

from xdistill.condense.context import CondenseContext
from xdistill.condense.registry import CONDENSE_METHODS, CondenseMethod
from xdistill.condense.teacher_labels import normalised_rows, teacher_probabilities
from xdistill.kinds.classification.methods import METHODS
from xdistill.train.config import DistillConfig


def relabel(ctx: CondenseContext, images: np.ndarray) -> np.ndarray:
    weighted = METHODS.get("weighted")
    names, weights = weighted.choose(ctx.prepared.ranking)
    probs = teacher_probabilities(ctx.prepared, ctx.task, list(names), images)
    combined = weighted.combine(probs, np.asarray(weights, dtype=np.float64), DistillConfig())
    if ctx.log is not None:
        ctx.log("condense: soft labels from " + ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights)))
    return normalised_rows(combined)


CONDENSE_METHODS.register("relabel", CondenseMethod(
    role="labels", summary="soft labels from the zoo: the selected teachers' weighted target-space predictions",
    citation="Qin et al. 2024, A Label is Worth a Thousand Images in Dataset Distillation", make=relabel,
    teachers=True))
