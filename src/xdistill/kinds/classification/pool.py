"""A polluted unlabeled pool: per-sample weights for samples outside the label set.

A pool crawled for a task holds images of classes the task does not have.
Distilled as they are, each is forced into a known class, by the teachers'
bridged targets and by the student's own pseudo-labels. Teacher methods
therefore weigh each unlabeled sample (config ``pool_weights``, on by
default; ``fixmatch`` and the other baselines keep their textbook meaning and
weigh nothing).

**Score.** A sample's score is the confidence of the method's combined,
calibrated teacher targets on it, ``s(x) = max_c p(c | x)``. The bridged
teachers were calibrated on the label set, so a sample of an unseen class
tends to get a flatter target.

**Reference.** What in-class scores look like is measured honestly: the
scores of the combined *out-of-fold* targets of the labeled split (each
bridge head predicts labels it was not fitted on, see
:mod:`xdistill.select.bridge`), ``r_1..r_n``.

**Weight.** A sample's conformal p-value of being in the label set is
``p(x) = (1 + #{j : r_j <= s(x)}) / (n + 1)`` (Vovk et al. 2005; Bates et al.
2023, "Testing for outliers with conformal p-values"): uniform over in-class
samples, small for samples scoring below every labeled one. The weight is
``w(x) = min(1, p(x) / POOL_ALPHA) ** 2``: 1 for every sample scoring above the
reference's lowest ``POOL_ALPHA`` share, falling quadratically below it.

**Only for a polluted pool.** On a pool of the label set's classes about a
``POOL_ALPHA`` share of samples falls below that level by construction of the
p-value. The weights are used only when the pool's share below it exceeds
``POLLUTION_FACTOR * POOL_ALPHA``; otherwise every weight is 1 and training is
exactly that of a run without them. On the demo and robust targets this
share is 0.11..0.18 at ``POOL_ALPHA = 0.2``, on the 60 % mismatched pool 0.59
(docs/benchmarks.md). With one label per class there is no out-of-fold
prediction and no reference: every weight is 1.

**The outside mask.** A task may mark which pool samples are outside its
label set in ``<task folder>/unlabeled-outside.npy`` (bool ``[N_unlabeled]``,
:data:`OUTSIDE_MASK_FILE`). It is an annotation for reports and the bench:
:func:`read_outside_mask` is called after training, to show the mean weight
given to each side, and nothing in training reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xdistill.data.task import Task
from xdistill.errors import XDistillError

OUTSIDE_MASK_FILE = "unlabeled-outside.npy"
POOL_ALPHA = 0.2  # p-value below which a pool sample is down-weighted (share of in-class samples affected)
POLLUTION_FACTOR = 2.0  # the pool is polluted when its share below POOL_ALPHA exceeds this many times POOL_ALPHA


def conformal_p_values(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[N] p-values of ``scores [N]`` against in-class ``reference [n]`` scores (higher = more in-class)."""
    ranked = np.sort(np.asarray(reference, dtype=np.float64))
    return (1.0 + np.searchsorted(ranked, np.asarray(scores, dtype=np.float64), side="right")) / (len(ranked) + 1.0)


@dataclass
class PoolWeights:
    """Per-sample weights of the unlabeled pool and why they are what they are."""

    weights: np.ndarray | None  # [N_unlabeled] in [0, 1]; None: every weight is 1 (the pool looks clean)
    share_below: float | None  # share of the pool with p-value < POOL_ALPHA; None without a reference
    reference_size: int  # labeled samples with an out-of-fold score

    @property
    def polluted(self) -> bool:
        return self.weights is not None

    def of(self, index: np.ndarray) -> np.ndarray | None:
        """The weights [B] of pool samples ``index``, or None when every weight is 1."""
        return None if self.weights is None else self.weights[index]

    def summary(self, outside: np.ndarray | None = None) -> dict:
        """What metrics.json keeps: the decision, the mean weight and, where the task marks them, the mean weight of
        in-class and out-of-class samples."""
        n = 0 if self.weights is None else len(self.weights)
        weights = self.weights if self.weights is not None else None
        record = {"polluted": self.polluted, "share_below_alpha": self.share_below, "alpha": POOL_ALPHA,
                  "pollution_factor": POLLUTION_FACTOR, "reference_size": self.reference_size,
                  "mean_weight": 1.0 if weights is None else float(weights.mean())}
        if outside is not None:
            w = np.ones(len(outside)) if weights is None else weights
            if weights is not None and n != len(outside):
                raise XDistillError(f"{OUTSIDE_MASK_FILE} marks {len(outside)} samples but the unlabeled pool has "
                                    f"{n}. Write one bool per unlabeled sample.")
            record["mean_weight_in_class"] = float(w[~outside].mean()) if (~outside).any() else None
            record["mean_weight_outside"] = float(w[outside].mean()) if outside.any() else None
            record["outside_share"] = float(outside.mean())
        return record


def pool_weights(reference: np.ndarray | None, scores: np.ndarray) -> PoolWeights:
    """The pool's weights from out-of-fold labeled scores ``reference [n]`` (None: none held out) and the pool's
    scores ``[N]`` (see the module's docstring)."""
    if reference is None or len(reference) == 0:
        return PoolWeights(None, None, 0)
    p = conformal_p_values(reference, scores)
    share = float((p < POOL_ALPHA).mean())
    if share <= POLLUTION_FACTOR * POOL_ALPHA:
        return PoolWeights(None, share, len(reference))
    return PoolWeights(np.minimum(1.0, p / POOL_ALPHA).astype(np.float32) ** 2, share, len(reference))


def read_outside_mask(task: Task) -> np.ndarray | None:
    """The task's outside-the-label-set mask of the unlabeled pool [N_unlabeled] bool, or None when it has none.
    For reports and the bench only: training never calls this."""
    if task.root is None or not (task.root / OUTSIDE_MASK_FILE).is_file():
        return None
    path = task.root / OUTSIDE_MASK_FILE
    try:
        mask = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise XDistillError(f"'{path}' cannot be read as a .npy array ({exc}). Save a bool array with numpy.save.")
    if mask.ndim != 1 or mask.dtype != np.bool_ or len(mask) != len(task.unlabeled):
        raise XDistillError(f"'{path}' must be a bool array of shape [{len(task.unlabeled)}] (one per unlabeled "
                            f"sample). Got {mask.dtype} of shape {list(mask.shape)}.")
    return mask
