"""Evaluation of students (and teachers) on labelled data."""

from xdistill.eval.metrics import (
    accuracy,
    agreement,
    classification_report,
    expected_calibration_error,
    macro_f1,
    negative_log_likelihood,
    per_class_accuracy,
)

__all__ = [
    "accuracy",
    "agreement",
    "classification_report",
    "expected_calibration_error",
    "macro_f1",
    "negative_log_likelihood",
    "per_class_accuracy",
]
