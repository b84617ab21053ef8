"""Teachers against the student: how much to distill, and from whom, per sample.

Distillation helps only where the teachers know more than the student can
learn without them. Two decisions follow from that (``anneal``, on by default):

Per epoch, **the distillation weight** ``w``. A teacher's reliability
``r_t`` is the out-of-fold accuracy of the combined targets on the labeled
split (:mod:`xdistill.kinds.classification.targets`): its bridge head never
saw the labels it is scored on. The student's ``r_s`` must be held out the
same way, and cannot be estimated on labels it trains on (it memorises them:
a linear head on its features scores 1.0 on them within a few epochs while its
test accuracy stays at 0.2 on mnist-color). So teacher methods keep a share
``HOLDOUT_SHARE`` of every class's labels (at least one, none from a class
with a single label) out of the student's training, and ``r_s`` is the
accuracy of the student's own predictions on them, measured at the start of
every epoch and averaged over the last ``SMOOTHING_EPOCHS`` measurements (a
fifth of 10 labels a class is 20 samples: one epoch's figure moves by 0.1). Before the first epoch the student's head has learnt nothing
(a fresh head gives chance accuracy), while its features have seen no label
either: there ``r_s`` is the out-of-fold accuracy of a bridge head (fitted
like a teacher's) on the starting student's features of all the labels,
what the labels alone give on the features the student starts from. For the
last ``REJOIN_SHARE`` of the epochs the held-out labels
rejoin the training and the distillation weight is the mean of the weights
decided so far. Then::

    w = s(r_t) * clip(1/2 + (r_t - r_s) / (2 anneal_margin), 0, 1),   s(r) = clip((r - 1/C) / (1 - 1/C), 0, 1)

``s`` is the chance-corrected reliability of earlier releases, which scales
the term when the teachers lead the student by ``anneal_margin`` or more; the
second factor gives them half of it when the two estimates tie (neither is
shown to be better) and removes them, linearly, as the student overtakes
them, down to 0 once it leads by ``anneal_margin``. Distilled errors do not
stay small: FixMatch turns the student's confident mistakes into
pseudo-labels, so a tie does not go to the teachers. With ``w = 0`` a teacher
method trains exactly like FixMatch.

Teachers whose ``r_t`` is not three binomial standard errors above chance
(``1/C + 3 sqrt((1/C)(1 - 1/C) / N)`` over ``N`` held-out labels) carry no
class information that ``N`` labels can show: they get ``w = 0`` from the
start, no label is held out, and the run trains exactly like FixMatch. Three,
not two: ``r_t`` is the best of many tries on the same labels (the ranking's
teachers, the bridge's regularisation grid), and a one-sided test at the 5 %
level corrected for about 36 of them (Bonferroni) needs z = 3.

With one label in every class nothing can be held out (``r_t`` is None,
see :mod:`xdistill.select.bridge`). The fallback measures agreement instead:
the student's bridge head (fitted on all labeled features) predicts the
unlabeled pool, ``g`` is the share of samples where it agrees with the
teachers' targets, and ``w = clip((g - 1/C) / (1 - 1/C), 0, 1)`` (Cohen's
kappa against a uniform chance rate): teachers that carry no class
information agree with any student at chance rate and get no weight.

Per sample, **teacher or self**. An unlabeled sample takes the student's own
weak-view pseudo-label when the student is confident by FixMatch's rule
(``max_c p_s(c|x) >= fixmatch_threshold``) and ``r_s * max_c p_s(c|x) >= w *
r_t * max_c p_t(c|x)``; otherwise it takes the teachers' target, whose loss is
scaled by ``w``. Bridged teacher probabilities are calibrated on held-out
labels, a student's softmax is not (it is over-confident), so the student's
confidence counts only above FixMatch's threshold; below it a sample goes to
the teachers whenever ``w > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from xdistill.select.bridge import BridgeSettings, fit_bridge

STUDENT_BRIDGE_SEED = 0  # heads on the student's features are fitted like a teacher's bridge (fixed seed)
HOLDOUT_SHARE = 0.2  # share of each class's labels kept from the student to measure it (5-fold's held-out share)
CHANCE_STANDARD_ERRORS = 3.0  # binomial standard errors above chance that teachers must reach (see above)
SMOOTHING_EPOCHS = 3  # held-out measurements of the student averaged into r_s
REJOIN_SHARE = 1 / 3  # share of the epochs, at the end, that train on every label with the mean decision
HOLDOUT_STREAM = 13  # random stream of the held-out draw, apart from the run's other streams


def chance_corrected(accuracy: float, num_classes: int) -> float:
    """(accuracy - 1/C) / (1 - 1/C), clipped to [0, 1]: 0 at chance level, 1 when perfect."""
    chance = 1.0 / num_classes
    return float(np.clip((accuracy - chance) / (1.0 - chance), 0.0, 1.0))


def distill_weight(teacher_reliability: float, student_reliability: float, num_classes: int, margin: float) -> float:
    """The distillation weight in [0, 1] from held-out accuracies of the teachers and of the student."""
    lead = float(np.clip(0.5 + (teacher_reliability - student_reliability) / (2.0 * margin), 0.0, 1.0))
    return chance_corrected(teacher_reliability, num_classes) * lead


def above_chance(reliability: float, num_classes: int, n: int) -> bool:
    """Whether a held-out accuracy over ``n`` labels is more than CHANCE_STANDARD_ERRORS above chance."""
    chance = 1.0 / num_classes
    return reliability > chance + CHANCE_STANDARD_ERRORS * float(np.sqrt(chance * (1.0 - chance) / max(n, 1)))


def rejoin_epoch(epochs: int) -> int:
    """The first epoch (0-based) in which the held-out labels rejoin the training; at least one epoch decides."""
    return max(1, epochs - int(np.floor(REJOIN_SHARE * epochs)))


def held_out_labels(labels: np.ndarray, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions the student trains on, positions held out to measure it) in a labeled split ``labels [N]``:
    ``HOLDOUT_SHARE`` of each class, at least one, none of a class with a single label."""
    rng = np.random.default_rng([seed, HOLDOUT_STREAM])
    held = []
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) >= 2:
            held.append(members[:max(1, round(HOLDOUT_SHARE * len(members)))])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), held_idx), held_idx


def agreement(student_probs: np.ndarray, teacher_probs: np.ndarray) -> float:
    """Share of samples where student [N, C] and teachers [N, C] predict the same class."""
    return float((student_probs.argmax(axis=1) == teacher_probs.argmax(axis=1)).mean())


@dataclass
class Decision:
    """One epoch's choice between the teachers and the student."""

    weight: float  # distillation weight w in [0, 1]
    teacher_reliability: float | None  # held-out labeled accuracy of the teachers' targets; None: no held-out label
    student_reliability: float | None  # the same estimate for a head on the student's own features
    estimate: str  # "held-out" (labels kept from the student), "probe" (first epoch), "chance" or "agreement"
    agreement: float | None = None  # share of unlabeled samples where student and teachers agree (fallback)
    held_out_accuracy: float | None = None  # this epoch's accuracy of the student on the held-out labels

    def to_json(self) -> dict:
        return {"distill_weight": self.weight, "teacher_reliability": self.teacher_reliability,
                "student_reliability": self.student_reliability, "estimate": self.estimate,
                "agreement": self.agreement, "held_out_accuracy": self.held_out_accuracy}

    @classmethod
    def from_json(cls, record: dict) -> Decision:
        return cls(record["distill_weight"], record["teacher_reliability"], record["student_reliability"],
                   record["estimate"], record.get("agreement"), record.get("held_out_accuracy"))


def held_out_decision(student_probs: np.ndarray, labels: np.ndarray, earlier: list[float],
                      teacher_reliability: float, num_classes: int, margin: float) -> Decision:
    """The epoch's decision from the student's predictions [H, C] on the held-out labels [H] and its held-out
    accuracies of the earlier epochs (oldest first)."""
    accuracy = float((student_probs.argmax(axis=1) == labels).mean())
    student_reliability = float(np.mean([*earlier, accuracy][-SMOOTHING_EPOCHS:]))
    weight = distill_weight(teacher_reliability, student_reliability, num_classes, margin)
    return Decision(weight, teacher_reliability, student_reliability, "held-out", held_out_accuracy=accuracy)


def standing_decision(decisions: list[Decision]) -> Decision:
    """The decision that stands once the held-out labels rejoin the training: the mean weight of ``decisions``."""
    last = decisions[-1]
    weight = float(np.mean([d.weight for d in decisions]))
    return Decision(weight, last.teacher_reliability, last.student_reliability, "mean of held-out decisions")


def probe_decision(student_labeled: np.ndarray, labels: np.ndarray, teacher_reliability: float, num_classes: int,
                   margin: float) -> Decision:
    """The first epoch's decision, from the starting student's features [N, D] of the labels [N]."""
    head = fit_bridge(student_labeled, labels, num_classes, settings=BridgeSettings(seed=STUDENT_BRIDGE_SEED))
    if head.cv_accuracy is None:
        return Decision(chance_corrected(teacher_reliability, num_classes), teacher_reliability, None, "probe")
    weight = distill_weight(teacher_reliability, head.cv_accuracy, num_classes, margin)
    return Decision(weight, teacher_reliability, head.cv_accuracy, "probe")


def agreement_decision(student_labeled: np.ndarray, labels: np.ndarray, student_unlabeled: np.ndarray,
                       teacher_unlabeled: np.ndarray, num_classes: int) -> Decision:
    """The one-label fallback, from the student's features on the labeled [N_l, D] and unlabeled [N_u, D]
    splits, the labels [N_l] and the teachers' targets on the unlabeled split [N_u, C]."""
    head = fit_bridge(student_labeled, labels, num_classes, fit_inputs=student_unlabeled,
                      settings=BridgeSettings(seed=STUDENT_BRIDGE_SEED))
    agree = agreement(head.predict_proba(student_unlabeled), teacher_unlabeled)
    return Decision(chance_corrected(agree, num_classes), None, None, "agreement", agree)


@torch.no_grad()
def student_outputs(student: nn.Module, batches: list[Tensor], device: str) -> tuple[np.ndarray, np.ndarray]:
    """The student's (features [N, D], probabilities [N, C]) on clean inputs, in eval mode (its mode is restored)."""
    was_training = student.training
    student.eval()
    try:
        features = [student.forward_features(x.to(device)) for x in batches]
        probs = [torch.softmax(student.head(f).float(), dim=1) for f in features]
        return (np.concatenate([f.float().cpu().numpy() for f in features]),
                np.concatenate([p.cpu().numpy() for p in probs]))
    finally:
        student.train(was_training)


def route(student_probs: Tensor, teacher_probs: Tensor, weight: float, teacher_reliability: float,
          student_reliability: float, threshold: float) -> tuple[Tensor, Tensor]:
    """Per unlabeled sample, (takes the student's own pseudo-label [U] bool, takes the teachers' target [U] bool).

    student_probs: [U, C] softmax of the student on the weak view; teacher_probs: [U, C] the teachers' target.
    A sample goes to the student when it is confident (>= threshold) and r_s * max p_s >= w * r_t * max p_t;
    the others go to the teachers while w > 0 (and to nobody, as in FixMatch, at w = 0).
    """
    confidence_s = student_probs.max(dim=1).values
    confidence_t = teacher_probs.max(dim=1).values
    own = (confidence_s >= threshold) & (student_reliability * confidence_s >= weight * teacher_reliability * confidence_t)
    teacher = ~own & (weight > 0)
    return own, teacher
