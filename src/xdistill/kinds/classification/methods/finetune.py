"""``finetune``: a generic pretrained student (``init``, made by ``xdistill pretrain``)
fine-tuned on the labeled split with a new head (a baseline)."""

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.steps import supervised_step
from xdistill.train.method import Method

METHODS.register("finetune", Method(supervised_step, "generic pretrained student fine-tuned on the labeled data",
                                    init="required", baseline=True))
