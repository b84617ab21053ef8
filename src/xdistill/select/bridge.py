"""Label-space bridging: every teacher, whatever its label space, yields
target-space soft predictions for every target sample.

A teacher's outputs (its features, or when it has none its log-probabilities)
are standardised and fed to an L2-regularised multinomial logistic head fitted
on the labeled split. The regularisation strength is chosen by stratified
cross-validation on the labeled split; the out-of-fold logits then fit a
temperature (Guo et al. 2017, temperature scaling) so the predictions are
calibrated on held-out labels, and their accuracy is the teacher's measured
reliability on this target.

Few labels: stratified k-fold needs 2 labels of every class. When some class
has a single label, that sample is never held out (without another label of
its class no head could predict it) and stays in every training set; the other
samples are held out one at a time (leave-one-out, or stratified folds beyond
LEAVE_ONE_OUT_MAX_SAMPLES of them). When every class has a single label there
is no held-out prediction at all: C is FEW_LABELS_C, the temperature is 1 and
the reliability is not estimated. ``BridgeHead.reliability_estimate`` records
which of these was used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from xdistill.errors import XDistillError

DEFAULT_C_GRID = (0.01, 0.1, 1.0, 10.0)
FEW_LABELS_C = 1.0  # C when no class has 2 labels to choose it by (scikit-learn's default, mid-grid)
LEAVE_ONE_OUT_MAX_SAMPLES = 200  # held-out samples up to which leave-one-out (one fit each) replaces folds


@dataclass
class BridgeHead:
    """A fitted teacher -> target-space head.

    ``mean``/``scale`` standardise the inputs; ``coef [C, D]`` and
    ``intercept [C]`` give target logits, divided by ``calibration_temperature``.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    calibration_temperature: float  # temperature scaling fitted on out-of-fold logits (Guo et al. 2017)
    C: float
    cv_accuracy: float | None  # out-of-fold accuracy on the labeled split (reliability); None: no held-out sample
    cv_nll: float | None  # out-of-fold NLL after temperature scaling; None: no held-out sample
    source: str  # "features" or "probs"
    folds: int  # fits behind the out-of-fold predictions (folds, or samples left out one at a time)
    cv_scores: dict[float, float] = field(default_factory=dict)
    # [N_labeled, C] out-of-fold, temperature-scaled probabilities; NaN rows for samples never held
    # out (the only label of their class); None when no sample could be held out
    oof_probs: np.ndarray | None = None
    reliability_estimate: str = "5-fold"  # "<k>-fold", "leave-one-out" or "none" (see the module docstring)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        z = (np.asarray(inputs, dtype=np.float64) - self.mean) / self.scale
        return (z @ self.coef.T + self.intercept) / self.calibration_temperature

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        """[N, D_teacher] -> [N, C_target] calibrated probabilities."""
        return softmax(self.logits(inputs), axis=1).astype(np.float32)


def bridge_inputs(features: np.ndarray | None, logits: np.ndarray | None) -> tuple[np.ndarray, str]:
    """What the head is fitted on: features when the teacher has them, else its log-probabilities."""
    if features is not None:
        return np.asarray(features, dtype=np.float64), "features"
    if logits is not None:
        return log_softmax(np.asarray(logits, dtype=np.float64), axis=1), "probs"
    raise XDistillError("A teacher without features or logits cannot be bridged to the target labels.")


def _fit_lr(x: np.ndarray, y: np.ndarray, C: float, num_classes: int, seed: int) -> LogisticRegression:
    model = LogisticRegression(C=C, max_iter=500, tol=1e-4, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def _full_logits(model: LogisticRegression, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Logits over all target classes, even when a fold lacked some class."""
    out = np.full((len(x), num_classes), -1e4)
    raw = model.decision_function(x)
    if raw.ndim == 1:  # binary: sklearn returns the logit of classes_[1]
        raw = np.stack([np.zeros_like(raw), raw], axis=1)
    out[:, model.classes_] = raw
    return out


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T > 0 minimising the NLL of softmax(logits / T) (Guo et al. 2017)."""
    result = minimize_scalar(lambda log_t: _nll(logits, labels, float(np.exp(log_t))), bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def held_out_splits(labels: np.ndarray, num_classes: int, folds: int = 5,
                    seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(train indices, held-out indices) pairs over ``labels [N]`` and the name of the estimate.

    Every class with 2 labels or more: stratified ``min(folds, smallest class)``-fold,
    "<k>-fold". Otherwise the only label of a class is never held out (it is in
    every training set) and the others are left out one at a time,
    "leave-one-out" (stratified folds over them beyond LEAVE_ONE_OUT_MAX_SAMPLES,
    "<k>-fold"). No class with 2 labels: no pairs, "none".
    """
    counts = np.bincount(labels, minlength=num_classes)
    if counts.min() >= 2:
        k = int(min(folds, counts.min()))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(labels)), labels)), f"{k}-fold"
    held = np.flatnonzero(counts[labels] >= 2)
    always = np.flatnonzero(counts[labels] < 2)
    if len(held) == 0:
        return [], "none"
    if len(held) <= LEAVE_ONE_OUT_MAX_SAMPLES:
        everyone = np.arange(len(labels))
        return [(np.delete(everyone, i), np.array([i])) for i in held], "leave-one-out"
    k = int(min(folds, counts[counts >= 2].min()))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = [(np.concatenate([held[train], always]), held[test])
              for train, test in splitter.split(np.zeros(len(held)), labels[held])]
    return splits, f"{k}-fold"


@dataclass(frozen=True)
class BridgeSettings:
    """How a bridge head is fitted."""

    c_grid: tuple[float, ...] = DEFAULT_C_GRID  # L2 strengths tried, chosen by out-of-fold NLL
    folds: int = 5  # stratified folds (fewer when a class has fewer labels)
    seed: int = 0  # fold shuffling and the solver's random state


def fit_bridge(inputs: np.ndarray, labels: np.ndarray, num_classes: int, source: str = "features",
               fit_inputs: np.ndarray | None = None, settings: BridgeSettings | None = None) -> BridgeHead:
    """Fit the teacher -> target head on the labeled split.

    inputs: [N_labeled, D] teacher features (or log-probabilities); labels: [N_labeled] in 0..C-1,
    at least one of every class. fit_inputs: optionally more teacher outputs (e.g. on the unlabeled
    split) used only to estimate the standardisation, which needs no labels.

    C and the temperature are chosen on out-of-fold predictions from :func:`held_out_splits`
    (stratified k-fold; leave-one-out when some class has a single label). With a single label
    in every class nothing can be held out: C = FEW_LABELS_C, temperature 1, and ``cv_accuracy``,
    ``cv_nll`` and ``oof_probs`` are None (``reliability_estimate="none"``).
    """
    settings = settings or BridgeSettings()
    inputs = np.asarray(inputs, dtype=np.float64)
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = [int(c) for c in np.flatnonzero(counts == 0)]
        raise XDistillError(
            f"Bridging needs at least 1 labeled sample of every class; classes {missing} have none. "
            "Label at least one sample of each class."
        )
    if not np.isfinite(inputs).all():
        raise XDistillError("Teacher outputs contain NaN or inf; the teacher cannot be bridged. Check the teacher.")
    pool = inputs if fit_inputs is None else np.concatenate([inputs, np.asarray(fit_inputs, dtype=np.float64)])
    mean = pool.mean(axis=0)
    scale = pool.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (inputs - mean) / scale
    splits, estimate = held_out_splits(labels, num_classes, settings.folds, settings.seed)
    chosen = _choose_c(z, labels, num_classes, splits, settings)
    coef, intercept = _head(_fit_lr(z, labels, chosen["C"], num_classes, settings.seed), num_classes, z.shape[1])
    return BridgeHead(mean=mean, scale=scale, coef=coef, intercept=intercept, source=source, folds=len(splits),
                      reliability_estimate=estimate, **chosen)


def _choose_c(z: np.ndarray, labels: np.ndarray, num_classes: int, splits: list, settings: BridgeSettings) -> dict:
    """C and the temperature from out-of-fold predictions, with their held-out accuracy, NLL and
    probabilities (the fixed few-labels choice when nothing can be held out)."""
    if not splits:
        return {"C": FEW_LABELS_C, "calibration_temperature": 1.0, "cv_nll": None, "cv_accuracy": None,
                "cv_scores": {}, "oof_probs": None}
    scored = np.sort(np.concatenate([held for _, held in splits]))  # every held-out sample, once
    oof: dict[float, np.ndarray] = {c: np.full((len(z), num_classes), np.nan) for c in settings.c_grid}
    for train_idx, held_idx in splits:
        for c in settings.c_grid:
            model = _fit_lr(z[train_idx], labels[train_idx], c, num_classes, settings.seed)
            oof[c][held_idx] = _full_logits(model, z[held_idx], num_classes)
    # Pick C by out-of-fold NLL after temperature scaling (accuracy ties are common with few labels).
    nll_and_temperature = {}
    for c in settings.c_grid:
        t = fit_temperature(oof[c][scored], labels[scored])
        nll_and_temperature[c] = (_nll(oof[c][scored], labels[scored], t), t)
    best_c = min(settings.c_grid, key=lambda c: (nll_and_temperature[c][0], -c))
    best_nll, temperature = nll_and_temperature[best_c]
    return {"C": best_c, "calibration_temperature": temperature, "cv_nll": best_nll,
            "cv_accuracy": float((oof[best_c][scored].argmax(1) == labels[scored]).mean()),
            "cv_scores": {c: nll for c, (nll, _) in nll_and_temperature.items()},
            "oof_probs": softmax(oof[best_c] / temperature, axis=1)}  # rows never held out stay NaN


def _head(final: LogisticRegression, num_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """coef [C, D] and intercept [C] over every target class, even those the fit never saw."""
    coef = np.zeros((num_classes, dim))
    intercept = np.full(num_classes, -1e4)
    if final.coef_.shape[0] == 1:  # binary
        coef[1], intercept[0], intercept[1] = final.coef_[0], 0.0, final.intercept_[0]
    else:
        coef[final.classes_] = final.coef_
        intercept[final.classes_] = final.intercept_
    return coef, intercept
