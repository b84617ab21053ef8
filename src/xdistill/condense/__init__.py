"""Dataset condensation: a target task condensed, with the zoo's knowledge, into a few images per class.

    condensed = condense(CondenseConfig(task="tasks/t", method="dm", ipc=10, out="condensed/dm"))

Stages inside: the real pool (:mod:`.pool`: labeled images, plus teacher-pseudo-labeled unlabeled ones on
a few-label task), the matching machinery (:mod:`.augment`: differentiable Siamese augmentation;
:mod:`.embedders`: freshly initialised networks and their intermediate maps; :mod:`.matching`: the loop
over mini-batches of real images), the methods (one file each in :mod:`.methods`, registered in
``CONDENSE_METHODS``) and the honest evaluation of a condensed set (:mod:`.evaluate`).
"""

from xdistill.condense.config import CondenseConfig
from xdistill.condense.registry import CONDENSE_METHODS, CondensedImages, CondenseMethod, methods_of
from xdistill.condense import methods as _methods  # noqa: F401  (registers every method)

__all__ = ["CONDENSE_METHODS", "CondenseConfig", "CondenseMethod", "CondensedImages", "methods_of"]
