"""Optional tracking: skipped backends stay silent, installed ones receive the run."""

from __future__ import annotations

import os

import pytest

from tests.report.test_run_report import METRICS
from xdistill.errors import XDistillError
from xdistill.report import tracking


def test_missing_backends_are_skipped_silently(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "available_backends", lambda: [])
    assert tracking.log_run(METRICS, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_unknown_backend_is_an_error(tmp_path):
    with pytest.raises(XDistillError, match="Unknown tracking backend"):
        tracking.log_run(METRICS, tmp_path, backends=("wandb",))


def test_tensorboard_receives_curves_and_final_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    assert tracking.log_run(METRICS, tmp_path, backends=("tensorboard",)) == ["tensorboard"]
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_mlflow_file_store_receives_the_run(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert tracking.log_run(METRICS, tmp_path, backends=("mlflow",)) == ["mlflow"]
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # the opt-in lasts only while xdistill logs
    # Reading the store back is the user's own opt-in, as for `mlflow ui` on it.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").resolve().as_uri())
    runs = mlflow.search_runs(experiment_names=["xdistill"])
    assert len(runs) == 1 and runs["metrics.final_accuracy"].iloc[0] == pytest.approx(METRICS["test"]["accuracy"])
