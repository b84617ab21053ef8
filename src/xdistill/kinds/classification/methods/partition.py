"""``partition``: distill, per sample, the teacher most confident on it."""

import numpy as np

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.steps import distill_step
from xdistill.kinds.classification.targets import every_teacher, most_confident
from xdistill.train.method import Method


def combine(probs, weights, config):
    return most_confident(probs, prior=np.ones(len(probs)))


METHODS.register("partition", Method(distill_step, "distill, per sample, the teacher most confident on it",
                                     teachers=True, unlabeled=True, choose=every_teacher, combine=combine))
