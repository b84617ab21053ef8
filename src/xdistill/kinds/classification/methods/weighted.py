"""``weighted``: distill the top teachers, weighted by task similarity.

The ranking's similarity weights w_t over its top teachers are mixed per
sample (config ``mix``): ``gated`` (default) hands each sample the prediction
of the teacher with the largest w_t * max_c p_t(c | x), the similarity prior
times the calibrated teacher's confidence on that sample; ``average`` takes
sum_t w_t p_t.
"""

import numpy as np

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.steps import distill_step
from xdistill.kinds.classification.targets import most_confident, weighted_average
from xdistill.train.method import Method


def choose(ranking):
    names = [t.name for t in ranking.ordered() if t.weight > 0]
    return names, np.array([ranking.weights[n] for n in names], dtype=np.float64)


def combine(probs, weights, config):
    if config.mix == "average":
        return weighted_average(probs, weights)
    return most_confident(probs, prior=weights)


METHODS.register("weighted", Method(distill_step, "distill the top teachers, weighted by similarity, gated per sample "
                                    "(see mix)", teachers=True, unlabeled=True, choose=choose, combine=combine,
                                    options=("mix", "top_k", "weight_temperature")))
