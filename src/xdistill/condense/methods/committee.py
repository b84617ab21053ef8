"""``committee``: soft labels from several teachers' agreement (committee voting, Cui et al. 2025,
"Dataset Distillation via Committee Voting").

The ``committee_size`` teachers with the best held-out labeled accuracy of their bridge to the target
vote; each member's calibrated prediction counts in proportion to its accuracy above chance
(acc - 1/C), so a member no better than a guess has no say, and the soft label is the weighted mean of
the votes, softened by ``label_temperature``. Where the members agree the label is sharp; where they
disagree it spreads over the classes they name.
"""

from __future__ import annotations

import numpy as np

from xdistill.condense.context import CondenseContext
from xdistill.condense.registry import CONDENSE_METHODS, CondenseMethod
from xdistill.condense.teacher_labels import soften, teacher_probabilities
from xdistill.errors import XDistillError


def committee_weights(accuracies: dict[str, float | None], size: int, num_classes: int) -> tuple[list[str], np.ndarray]:
    """The ``size`` teachers of highest held-out accuracy (unknown counts as chance) and their vote weights
    proportional to accuracy - 1/C (uniform when none is above chance)."""
    chance = 1.0 / num_classes
    scored = {name: (chance if acc is None else acc) for name, acc in accuracies.items()}
    members = sorted(scored, key=lambda n: (-scored[n], n))[:size]
    weights = np.array([max(scored[n] - chance, 0.0) for n in members])
    if weights.sum() <= 0:
        weights = np.ones(len(members))
    return members, weights / weights.sum()


def committee(ctx: CondenseContext, images: np.ndarray) -> np.ndarray:
    prepared = ctx.prepared
    names = [t.name for t in prepared.ranking.teachers]
    if not names:
        raise XDistillError("The committee needs at least one teacher in the zoo. Check --zoo and --teachers.")
    accuracies = {name: prepared.head(ctx.task, name).cv_accuracy for name in names}
    members, weights = committee_weights(accuracies, ctx.config.committee_size, ctx.num_classes)
    probs = teacher_probabilities(prepared, ctx.task, members, images)
    if ctx.log is not None:
        ctx.log("condense: committee of " + ", ".join(f"{n} {w:.2f}" for n, w in zip(members, weights)))
    return soften(np.tensordot(weights, probs, axes=1), ctx.config.label_temperature)


CONDENSE_METHODS.register("committee", CondenseMethod(
    role="labels", summary="soft labels from a committee: the best teachers vote, weighted by held-out accuracy",
    citation="Cui et al. 2025, Dataset Distillation via Committee Voting", make=committee, teachers=True))
