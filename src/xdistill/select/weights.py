"""Teacher weights for multi-teacher distillation from selection scores.

    w = softmax(z / temperature) over the top-k teachers, z = standardised scores

Scores are standardised across the candidate teachers (z-scores), so the
temperature means the same thing for every metric whatever its scale: at
temperature 1 a teacher one standard deviation above another gets e (2.7x)
its weight; small temperatures approach picking the top teacher, large ones
the uniform ensemble. Teachers whose score is undefined get weight 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from xdistill.errors import XDistillError


def teacher_weights(scores: Mapping[str, float | None], temperature: float = 1.0, top_k: int = 0) -> dict[str, float]:
    """Weights summing to 1 over the teachers, from their scores (higher = better); ``top_k`` 0 keeps all.

    The defaults a run uses are SelectionConfig's (``weight_temperature``, ``top_k``)."""
    if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
        raise XDistillError(f"The 'weight_temperature' must be a number > 0. Got {temperature!r}.")
    if top_k < 0:
        raise XDistillError(f"'top_k' must be >= 0 (0 keeps every teacher). Got {top_k}.")
    defined = {n: float(s) for n, s in scores.items() if s is not None and math.isfinite(s)}
    if not defined:
        raise XDistillError("No teacher has a defined score, so no weights can be formed. Choose another metric.")
    names = sorted(defined, key=lambda n: -defined[n])
    if top_k:
        names = names[:top_k]
    values = np.array([defined[n] for n in names])
    all_values = np.array(list(defined.values()))
    spread = all_values.std()
    z = (values - all_values.mean()) / spread if spread > 0 else np.zeros_like(values)
    logits = z / temperature
    w = np.exp(logits - logits.max())
    w /= w.sum()
    out = {n: 0.0 for n in scores}
    out.update({n: float(v) for n, v in zip(names, w)})
    return out


def rank_order(scores: Mapping[str, float | None]) -> dict[str, int | None]:
    """1-based ranks (1 = best); None where the score is undefined."""
    defined = sorted((n for n, s in scores.items() if s is not None and math.isfinite(s)), key=lambda n: -scores[n])
    ranks: dict[str, int | None] = {n: None for n in scores}
    ranks.update({n: i + 1 for i, n in enumerate(defined)})
    return ranks
