"""``finetune``: a generic student pretrained once on other text (``xdistill pretrain``), fine-tuned on the
target's train text with next-token cross-entropy."""

from xdistill.kinds.language_modeling.methods import METHODS
from xdistill.kinds.language_modeling.steps import next_token_step
from xdistill.train.method import Method

METHODS.register("finetune", Method(
    next_token_step, "a generic pretrained student (init=FILE from xdistill pretrain) fine-tuned on the train text",
    init="required", baseline=True))
