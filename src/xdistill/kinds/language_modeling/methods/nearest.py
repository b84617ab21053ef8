"""``nearest``: distill the teacher with the lowest bits per byte on the target's train text.

The student matches that teacher's cached next-token distributions (top k plus tail, ``loss``)
beside the next-token cross-entropy; it may start from a generic pretrained student (``init``).
"""

import numpy as np

from xdistill.kinds.language_modeling.methods import METHODS
from xdistill.kinds.language_modeling.steps import distill_step
from xdistill.kinds.language_modeling.targets import mix_targets
from xdistill.train.method import Method

METHODS.register("nearest", Method(
    distill_step, "distill the teacher with the lowest bits per byte on the train text (its cached top-k "
    "distributions) beside cross-entropy", teachers=True, init="optional",
    options=("loss", "kd_weight", "label_weight", "cache_top_k", "domain_sampling"),
    choose=lambda ranking: ([ranking.top], np.ones(1)),
    combine=lambda parts, weights, config: mix_targets(parts, weights, config.cache_top_k)))
