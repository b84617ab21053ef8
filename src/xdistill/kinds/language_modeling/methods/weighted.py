"""``weighted``: distill a mixture of the teachers, weighted by their bits per byte on the train text.

Weights are a softmax over the teachers' standardised negative bits per byte (``weight_temperature``,
the ``top_k`` best); the student matches the weight-mixed next-token distributions (``targets.py``)
beside the next-token cross-entropy.
"""

import numpy as np

from xdistill.kinds.language_modeling.methods import METHODS
from xdistill.kinds.language_modeling.steps import distill_step
from xdistill.kinds.language_modeling.targets import mix_targets
from xdistill.train.method import Method


def choose_weighted(ranking):
    kept = [t for t in ranking.ordered() if t.weight > 0]
    return [t.name for t in kept], np.array([t.weight for t in kept])


METHODS.register("weighted", Method(
    distill_step, "distill the teachers' next-token distributions mixed by weights from their bits per byte "
    "on the train text, beside cross-entropy", teachers=True, init="optional",
    options=("loss", "kd_weight", "label_weight", "weight_temperature", "top_k", "cache_top_k", "domain_sampling"),
    choose=choose_weighted,
    combine=lambda parts, weights, config: mix_targets(parts, weights, config.cache_top_k)))
