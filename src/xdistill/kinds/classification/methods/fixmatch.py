"""``fixmatch``: FixMatch (Sohn et al. 2020), the semi-supervised baseline."""

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.steps import fixmatch_step
from xdistill.train.method import Method

METHODS.register("fixmatch", Method(fixmatch_step, "FixMatch semi-supervised baseline", unlabeled=True,
                                    strong_views=True, baseline=True))
