"""``nearest``: distill the top-ranked teacher alone."""

import numpy as np

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.steps import distill_step
from xdistill.train.method import Method


def choose(ranking):
    return [ranking.top], np.ones(1)


def combine(probs, weights, config):
    return probs[int(np.argmax(weights))]


METHODS.register("nearest", Method(distill_step, "distill the top-ranked teacher", teachers=True, unlabeled=True,
                                   choose=choose, combine=combine))
