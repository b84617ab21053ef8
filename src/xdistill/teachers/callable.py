"""Black-box teachers: something that answers class probabilities and nothing else
(a web API behind a function, a fitted scikit-learn estimator).

    - name: review-api
      kind: callable
      modality: text
      target: "mypackage.api:predict_proba"   # f(raw batch) -> probabilities [N, C]
      version: "2024-06"                      # bump when the model behind the target changes
      labels: [negative, positive]

    - name: forest
      kind: callable
      modality: features
      path: forest.joblib                     # a pickled estimator with predict_proba
      trust: true                             # unpickling runs code from the file

The black box sees the raw batch (a numpy array of images or vectors, or a list
of strings), never xdistill's preprocessing. Its probabilities are checked and
returned as logits = log(p), so a softmax gives them back; it has no features.
``queries`` counts the samples sent to it, so an API's cost can be tracked.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.io import sha256_file
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherOutput, TeacherSpec

SUM_TOLERANCE = 1e-4  # how far a row of probabilities may sum from 1
# log(0) would be -inf and break standardisation downstream; softmax of the
# clipped logs still returns the probabilities to within 1e-12.
_SMALLEST_PROBABILITY = 1e-12


@dataclass
class CallableOptions:
    target: str | None = None  # "package.module:function" taking the raw batch, returning probabilities [N, C]
    path: str | None = None  # or a pickled/joblib estimator with predict_proba, relative to the zoo file
    trust: bool = False  # must be true to unpickle 'path': loading a pickle runs code stored in the file
    version: str = ""  # for 'target': bump it when the model behind the function changes (re-queries it)

    def problems(self) -> list[str]:
        problems = []
        if bool(self.target) == bool(self.path):
            problems.append(
                "A callable teacher needs exactly one of 'target' (\"package.module:function\") and 'path' "
                f"(a pickled estimator). Got target={self.target!r}, path={self.path!r}."
            )
        if self.path and not self.trust:
            problems.append(
                f"Refusing to unpickle '{self.path}': loading a pickle or joblib file runs whatever code it holds, "
                "so only load files you made yourself or got from someone you trust. If you do trust it, "
                "add 'trust: true' to this zoo entry."
            )
        return problems


def import_target(target: str, teacher: str, base_dir) -> Callable:
    """``"package.module:function"`` -> the function; the zoo file's folder is searched first."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise XDistillError(f"Teacher '{teacher}': 'target' must look like 'package.module:function'. Got {target!r}.")
    folder = str(base_dir)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # a module beside the zoo file, like relative paths
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise XDistillError(f"Teacher '{teacher}': cannot import '{module_name}' for 'target' ({exc}).") from exc
    finally:
        if added:
            sys.path.remove(folder)
    function = module
    for part in attr.split("."):
        if not hasattr(function, part):
            raise XDistillError(f"Teacher '{teacher}': '{module_name}' has no '{attr}' for 'target'.")
        function = getattr(function, part)
    if not callable(function):
        raise XDistillError(f"Teacher '{teacher}': 'target' {target!r} is a {type(function).__name__}, not a function.")
    return function


def checked_probabilities(probs: Any, n: int, labels: list[str] | None, teacher: str) -> np.ndarray:
    """A black box's answer -> float64 [N, C] probabilities, or a clear error."""
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise XDistillError(
            f"Teacher '{teacher}' returned {type(probs).__name__}, not an array of probabilities [N, C]."
        ) from None
    if p.ndim != 2:
        raise XDistillError(
            f"Teacher '{teacher}' returned an array of shape {list(p.shape)}; expected probabilities [{n}, C]."
        )
    if p.shape[0] != n:
        raise XDistillError(
            f"Teacher '{teacher}' returned {p.shape[0]} rows of probabilities for a batch of {n} samples."
        )
    if labels is not None and p.shape[1] != len(labels):
        raise XDistillError(
            f"Teacher '{teacher}' returned {p.shape[1]} probabilities per sample but its zoo entry declares "
            f"{len(labels)} labels. Fix 'labels' in the zoo file."
        )
    if not np.isfinite(p).all():
        raise XDistillError(f"Teacher '{teacher}' returned NaN or infinite probabilities.")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if p.min() < 0 or abs(sums[worst] - 1) > SUM_TOLERANCE:
        raise XDistillError(
            f"Teacher '{teacher}' must return probabilities (non-negative, each row summing to 1), but row {worst} "
            f"sums to {sums[worst]:.6g} with values in [{p.min():.3g}, {p.max():.3g}]. If these are scores or "
            "logits, apply a softmax in the function before returning them."
        )
    return p


class CallableTeacher:
    def __init__(self, spec: TeacherSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.labels = spec.labels
        self.modality = spec.modality
        self.options: CallableOptions = spec.options
        self.path = spec.base_dir / spec.options.path if spec.options.path else None
        self.queries = 0  # samples sent to the black box by this object
        self._predict: Callable | None = None
        self._file_hash: str | None = None

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise XDistillError(
                f"Teacher '{self.name}': estimator file '{self.path}' does not exist. Fix 'path' in the zoo file."
            )

    def _load_estimator(self) -> Callable:
        if not self.options.trust:  # also refused when the zoo was built in code, not read from YAML
            raise XDistillError(f"Teacher '{self.name}': refusing to unpickle '{self.path}' without 'trust: true'.")
        self._check_file()
        import joblib  # reads plain pickles too

        try:
            estimator = joblib.load(self.path)
        except Exception as exc:  # unpickling can raise anything the stored objects raise
            raise XDistillError(
                f"Teacher '{self.name}': cannot load '{self.path}' ({type(exc).__name__}: {exc})."
            ) from exc
        if not callable(getattr(estimator, "predict_proba", None)):
            raise XDistillError(
                f"Teacher '{self.name}': '{self.path.name}' holds a {type(estimator).__name__}, which has no "
                "predict_proba. Save a fitted classifier that answers probabilities."
            )
        if self.labels is None and hasattr(estimator, "classes_"):
            self.labels = [str(c) for c in estimator.classes_]
        return estimator.predict_proba

    def setup(self) -> None:
        if self._predict is not None:
            return
        if self.options.target:
            self._predict = import_target(self.options.target, self.name, self.spec.base_dir)
        else:
            self._predict = self._load_estimator()

    def fingerprint(self) -> str:
        if self.options.target:
            identity = f"target|{self.options.target}|version|{self.options.version}"
        else:
            if self._file_hash is None:
                self._check_file()
                self._file_hash = sha256_file(self.path)
            identity = f"file|{self._file_hash}"
        return hashlib.sha256(f"callable|{identity}|modality|{self.modality}".encode()).hexdigest()

    def outputs(self, batch) -> TeacherOutput:
        self.setup()
        raw = [str(t) for t in batch] if self.modality == "text" else np.asarray(batch)
        self.queries += len(raw)
        probs = checked_probabilities(self._predict(raw), len(raw), self.labels, self.name)
        logits = torch.from_numpy(np.log(np.clip(probs, _SMALLEST_PROBABILITY, None))).float()
        return TeacherOutput(features=None, logits=logits)


TEACHER_KINDS.register(
    "callable", TeacherKind(options=CallableOptions, build=CallableTeacher, modalities=("image", "features", "text"))
)
