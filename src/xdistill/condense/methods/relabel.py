"""``relabel``: soft labels from the zoo: the combined target-space predictions of the selected teachers.

The teachers are chosen and weighted as the ``weighted`` distillation method does (the ranking's
similarity weights over its top-k), run live on the condensed images, and their calibrated predictions
averaged with those weights (``mix=average``: a soft label should keep what the teachers agree and
disagree on, where distillation's default gate hands each image one teacher's prediction), then
softened by ``label_temperature``. Alone
(``--method relabel``), it relabels random real images, the comparison that shows how much of a
condensed set's gain the soft labels carry.
"""

from __future__ import annotations

import numpy as np

from xdistill.condense.context import CondenseContext
from xdistill.condense.registry import CONDENSE_METHODS, CondenseMethod
from xdistill.condense.teacher_labels import soften, teacher_probabilities
from xdistill.kinds.classification.methods import METHODS
from xdistill.train.config import DistillConfig


def relabel(ctx: CondenseContext, images: np.ndarray) -> np.ndarray:
    weighted = METHODS.get("weighted")
    names, weights = weighted.choose(ctx.prepared.ranking)
    probs = teacher_probabilities(ctx.prepared, ctx.task, list(names), images)
    combined = weighted.combine(probs, np.asarray(weights, dtype=np.float64), DistillConfig(mix="average"))
    if ctx.log is not None:
        ctx.log("condense: soft labels from " + ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights)))
    return soften(combined, ctx.config.label_temperature)


CONDENSE_METHODS.register("relabel", CondenseMethod(
    role="labels", summary="soft labels from the zoo: the selected teachers' weighted target-space predictions",
    citation="Qin et al. 2024, A Label is Worth a Thousand Images in Dataset Distillation", make=relabel,
    teachers=True))
