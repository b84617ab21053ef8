"""Teacher selection: transferability metrics that rank teachers by how well
their outputs on the target data predict the target labels.

Every metric is a plain function ``metric(teacher_output, labels) -> float``
where higher means more transferable, registered in ``METRICS`` with what it
needs from a teacher (``METRICS.get("leep").needs == "probs"``).
``compute_metric`` scores a teacher by name and returns None when the teacher
lacks that input; ``not_applicable_reason`` says why a metric cannot run on
given labels and teacher outputs (few labels), and ``FALLBACK_ORDER`` is the
order in which the default ranking metric falls back. Put teachers' features
on the same footing first with ``prepare_features``. Invalid inputs raise :class:`xdistill.errors.XDistillError`
naming every problem at once.
"""

from xdistill.select.applicability import FALLBACK_ORDER, not_applicable_reason
from xdistill.select.metrics import (
    METRICS,
    MetricSpec,
    compute_metric,
    gbc,
    hscore,
    hscore_regularized,
    leep,
    logme,
    nce,
    transrate,
)
from xdistill.select.prepare import PREPARATIONS, prepare_features
from xdistill.select.probes import knn_loo_accuracy, linear_probe_accuracy

__all__ = [
    "FALLBACK_ORDER",
    "METRICS",
    "PREPARATIONS",
    "MetricSpec",
    "compute_metric",
    "gbc",
    "hscore",
    "hscore_regularized",
    "knn_loo_accuracy",
    "leep",
    "linear_probe_accuracy",
    "logme",
    "nce",
    "not_applicable_reason",
    "prepare_features",
    "transrate",
]
