"""``collaborative``: two students of different architectures distilled together, each also distilling the
other per sample where the other is the more reliable (:mod:`xdistill.kinds.classification.collaborative`);
the teachers are chosen and mixed as by ``weighted``."""

from xdistill.kinds.classification.collaborative import collaborative_step
from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.methods.weighted import choose, combine
from xdistill.train.method import Method

METHODS.register("collaborative", Method(collaborative_step, "two students of different architectures (student and "
                                         "partner) distilled together, each also learning from the other where it "
                                         "is the more reliable", teachers=True, unlabeled=True, choose=choose,
                                         combine=combine, partner=True,
                                         options=("partner", "peer_weight", "mix", "top_k", "weight_temperature")))
