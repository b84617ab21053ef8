"""Transferability metrics: how well a teacher's outputs on the target data
predict the target labels, without training anything on them.

Every metric is a plain function, numpy in and a float out, and higher always
means more transferable. Each is registered in ``METRICS`` with what it needs
from a teacher: its ``features [N, D]`` or its class probabilities
``probs [N, Cs]`` over its own (source) classes. Scores of different teachers
are only comparable once their features are put on the same footing; see
:func:`xdistill.select.prepare.prepare_features`.

The closed-form metrics live in this package, one family per module, each
registered where it is defined; every module here is imported when the package
is, so a new metric is one more file. The fitted probes (kNN, logistic
regression) are in :mod:`xdistill.select.probes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from xdistill.registry import Registry, import_submodules

Needs = Literal["features", "probs"]


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: ``score(teacher_output, labels, **options) -> float``,
    with what it needs to be computable at all."""

    name: str
    score: Callable[..., float]
    needs: Needs  # "features": the teacher's features [N, D]; "probs": its probabilities [N, Cs]
    citation: str
    min_per_class: int = 1  # labeled samples every class needs
    min_in_one_class: int = 1  # labeled samples at least one class needs (held-out probes: 2)
    single_sample_class: str = ""  # what the metric does with a class of one labeled sample, after its name
    uses_reference: bool = False  # takes unlabeled features of the teacher as ``reference=`` (few labels)


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(name: str, needs: Needs, citation: str, min_per_class: int = 1,
                    min_in_one_class: int = 1, single_sample_class: str = "", uses_reference: bool = False) -> Callable:
    """Register the decorated ``score(teacher_output, labels, **options)`` in METRICS."""

    def add(score: Callable[..., float]) -> Callable[..., float]:
        METRICS.register(name, MetricSpec(name=name, score=score, needs=needs, citation=citation,
                                          min_per_class=min_per_class, min_in_one_class=min_in_one_class,
                                          single_sample_class=single_sample_class, uses_reference=uses_reference))
        return score

    return add


def compute_metric(name: str, features=None, probs=None, *, labels, reference_features=None,
                   **options) -> float | None:
    """Score one teacher with the metric registered as ``name``.

    Returns None when the teacher lacks what the metric needs (e.g. "leep" for
    a teacher without probabilities), so a whole zoo can be scored in one loop.
    ``reference_features [M, D]``, the teacher's features of unlabeled samples
    prepared like ``features``, go to the metrics that use them
    (``MetricSpec.uses_reference``). ``options`` go to the metric (e.g.
    ``gaussian="diagonal"`` for "gbc").
    """
    spec = METRICS.get(name)
    teacher_output = features if spec.needs == "features" else probs
    if teacher_output is None:
        return None
    if spec.uses_reference and reference_features is not None:
        options = {"reference": reference_features, **options}
    return float(spec.score(teacher_output, labels, **options))


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[labels]


import_submodules(__name__, __path__)  # each module registers its metrics

from xdistill.select.metrics.gbc import gbc  # noqa: E402
from xdistill.select.metrics.hscore import hscore, hscore_regularized  # noqa: E402
from xdistill.select.metrics.logme import logme  # noqa: E402
from xdistill.select.metrics.predictions import leep, nce  # noqa: E402
from xdistill.select.metrics.transrate import transrate  # noqa: E402

__all__ = ["METRICS", "MetricSpec", "compute_metric", "gbc", "hscore", "hscore_regularized", "leep", "logme", "nce",
           "register_metric", "transrate"]
