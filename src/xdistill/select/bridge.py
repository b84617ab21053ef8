"""Label-space bridging: every teacher, whatever its label space, yields
target-space soft predictions for every target sample.

A teacher's outputs (its features, or when it has none its log-probabilities)
are standardised and fed to an L2-regularised multinomial logistic head fitted
on the labeled split. The regularisation strength is chosen by stratified
cross-validation on the labeled split; the out-of-fold logits then fit a
temperature (Guo et al. 2017, temperature scaling) so the predictions are
calibrated on held-out labels, and their accuracy is the teacher's measured
reliability on this target.
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
    cv_accuracy: float  # out-of-fold accuracy on the labeled split (reliability)
    cv_nll: float  # out-of-fold NLL after temperature scaling
    source: str  # "features" or "probs"
    folds: int
    cv_scores: dict[float, float] = field(default_factory=dict)
    oof_probs: np.ndarray | None = None  # [N_labeled, C] out-of-fold, temperature-scaled probabilities

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


def fit_bridge(inputs: np.ndarray, labels: np.ndarray, num_classes: int, source: str = "features",
               c_grid: tuple[float, ...] = DEFAULT_C_GRID, folds: int = 5, seed: int = 0,
               fit_inputs: np.ndarray | None = None) -> BridgeHead:
    """Fit the teacher -> target head on the labeled split.

    inputs: [N_labeled, D] teacher features (or log-probabilities); labels: [N_labeled] in 0..C-1.
    fit_inputs: optionally more teacher outputs (e.g. on the unlabeled split) used only to
    estimate the standardisation, which needs no labels.
    """
    inputs = np.asarray(inputs, dtype=np.float64)
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if (counts < 2).any():
        missing = [int(c) for c in np.flatnonzero(counts < 2)]
        raise XDistillError(
            f"Bridging needs at least 2 labeled samples of every class; classes {missing} have fewer. Label more samples."
        )
    if not np.isfinite(inputs).all():
        raise XDistillError("Teacher outputs contain NaN or inf; the teacher cannot be bridged. Check the teacher.")
    pool = inputs if fit_inputs is None else np.concatenate([inputs, np.asarray(fit_inputs, dtype=np.float64)])
    mean = pool.mean(axis=0)
    scale = pool.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (inputs - mean) / scale
    k = int(min(folds, counts.min()))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    oof: dict[float, np.ndarray] = {c: np.zeros((len(z), num_classes)) for c in c_grid}
    for train_idx, held_idx in splitter.split(z, labels):
        for c in c_grid:
            model = _fit_lr(z[train_idx], labels[train_idx], c, num_classes, seed)
            oof[c][held_idx] = _full_logits(model, z[held_idx], num_classes)
    # Pick C by out-of-fold NLL after temperature scaling (accuracy ties are common with few labels).
    scored = {}
    for c in c_grid:
        t = fit_temperature(oof[c], labels)
        scored[c] = (_nll(oof[c], labels, t), t)
    best_c = min(c_grid, key=lambda c: (scored[c][0], -c))
    best_nll, temperature = scored[best_c]
    cv_accuracy = float((oof[best_c].argmax(1) == labels).mean())
    final = _fit_lr(z, labels, best_c, num_classes, seed)
    coef = np.zeros((num_classes, z.shape[1]))
    intercept = np.full(num_classes, -1e4)
    if final.coef_.shape[0] == 1:  # binary
        coef[1], intercept[0], intercept[1] = final.coef_[0], 0.0, final.intercept_[0]
    else:
        coef[final.classes_] = final.coef_
        intercept[final.classes_] = final.intercept_
    return BridgeHead(mean=mean, scale=scale, coef=coef, intercept=intercept, calibration_temperature=temperature, C=best_c,
                      cv_accuracy=cv_accuracy, cv_nll=best_nll, source=source, folds=k,
                      cv_scores={c: scored[c][0] for c in c_grid},
                      oof_probs=softmax(oof[best_c] / temperature, axis=1))
