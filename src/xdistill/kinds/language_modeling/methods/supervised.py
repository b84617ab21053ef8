"""``supervised``: the student trained from scratch on the target's train text (next-token cross-entropy)."""

from xdistill.kinds.language_modeling.methods import METHODS
from xdistill.kinds.language_modeling.steps import next_token_step
from xdistill.train.method import Method

METHODS.register("supervised", Method(
    next_token_step, "the student trained from scratch on the train text (next-token cross-entropy)",
    init="none", baseline=True))
