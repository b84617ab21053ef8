"""``supervised``: cross-entropy on the labeled split only, from scratch (a baseline)."""

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.steps import supervised_step
from xdistill.train.method import Method

METHODS.register("supervised", Method(supervised_step, "labeled data only, from scratch", init="none", baseline=True))
