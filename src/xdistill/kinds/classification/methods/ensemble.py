"""``ensemble``: distill the uniform mean of every teacher (an ablation)."""

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.steps import distill_step
from xdistill.kinds.classification.targets import every_teacher
from xdistill.train.method import Method


def combine(probs, weights, config):
    return probs.mean(axis=0)

METHODS.register("ensemble", Method(distill_step, "distill the uniform mean of every teacher (ablation)",
                                    teachers=True, unlabeled=True, choose=every_teacher, combine=combine))
