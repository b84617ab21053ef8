"""``dho``: dual-head optimisation (Kang et al. 2025) for the few-labels setting.

One backbone, two heads (:class:`xdistill.students.dual_head.DualHead`): a
supervised head trained by cross-entropy on the labels alone, and a
distillation head trained on everything ``weighted`` distills (the top
teachers' targets gated per sample, the student's own pseudo-labels, the
labeled samples' mixed targets), so that the few labels and the many teacher
targets do not pull one head two ways. The prediction mixes the two heads'
probabilities with a weight ``alpha`` (the supervised head's share).

``alpha`` is chosen on labels the student has not trained on: a teacher
method keeps a fifth of each class's labels out of training for the first
two thirds of the epochs (:mod:`xdistill.kinds.classification.trust`). At
the start of each of those epochs but the first (fresh heads), the held-out labels score every alpha of
``ALPHAS`` (:mod:`xdistill.kinds.classification.mixing`); when they rejoin the
training, ``alpha`` is the one with the lowest held-out NLL averaged over the
last ``SMOOTHING_EPOCHS`` of those measurements (ties: the better accuracy,
then the larger alpha) and stays fixed to the end. It is saved with the student, so ``eval`` and ``export``
use the mixture. Where no label can be held out (one label per class,
``anneal=false``) alpha stays ``DEFAULT_ALPHA``; where the teachers carry no
class information (the ``chance`` decision) it is 1, the supervised head
alone.
"""

from xdistill.kinds.classification.methods import METHODS
from xdistill.kinds.classification.methods.weighted import choose, combine
from xdistill.kinds.classification.steps import dho_step
from xdistill.students.dual_head import DualHead
from xdistill.train.method import Method

METHODS.register("dho", Method(dho_step, "dual-head optimisation: a supervised and a distillation head on one "
                               "student, mixed by a weight chosen on held-out labels", teachers=True, unlabeled=True,
                               choose=choose, combine=combine, options=("mix", "top_k", "weight_temperature"),
                               student_head=DualHead.beside))
