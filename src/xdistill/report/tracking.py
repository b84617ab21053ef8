"""Optional experiment tracking: a run's curves and final metrics logged to
TensorBoard event files and to a local MLflow file store, each only when its
library is installed (neither is a dependency of xdistill)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

BACKENDS = ("tensorboard", "mlflow")


def available_backends() -> list[str]:
    """The tracking backends whose libraries can be imported here."""
    found = []
    if importlib.util.find_spec("tensorboard") is not None:
        found.append("tensorboard")
    if importlib.util.find_spec("mlflow") is not None:
        found.append("mlflow")
    return found


def _scalars(metrics: dict) -> tuple[list[tuple[int, dict[str, float]]], dict[str, float]]:
    """Per-epoch scalars (train terms, test metrics) and the final test and cost figures."""
    per_epoch = []
    for record in metrics.get("curves") or []:
        values = {f"train/{k}": float(v) for k, v in (record.get("train") or {}).items()}
        values.update({f"test/{k}": float(v) for k, v in (record.get("test") or {}).items()
                       if isinstance(v, (int, float))})
        per_epoch.append((int(record["epoch"]), values))
    final = {f"final/{k}": float(v) for k, v in (metrics.get("test") or {}).items() if isinstance(v, (int, float))}
    final.update({f"cost/{k}": float(v) for k, v in (metrics.get("cost") or {}).items() if isinstance(v, (int, float))})
    return per_epoch, final


def _log_tensorboard(metrics: dict, folder: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    per_epoch, final = _scalars(metrics)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for epoch, values in per_epoch:
            for name, value in values.items():
                writer.add_scalar(name, value, epoch)
        last = per_epoch[-1][0] if per_epoch else 0
        for name, value in final.items():
            writer.add_scalar(name, value, last)
    finally:
        writer.close()


@contextlib.contextmanager
def _file_store_allowed() -> Iterator[None]:
    """MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set; a user's own setting wins."""
    if "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def _log_mlflow(metrics: dict, store: Path, run_name: str) -> None:
    import mlflow

    per_epoch, final = _scalars(metrics)
    client_uri = store.resolve().as_uri()
    mlflow.set_tracking_uri(client_uri)
    # A folder of plain files beside the run needs no database server; MLflow 3 keeps that store behind an opt-in.
    with _file_store_allowed():
        mlflow.set_experiment("xdistill")
        with mlflow.start_run(run_name=run_name):
            mlflow.log_params({"task": metrics.get("task"), "method": metrics.get("method"), "seed": metrics.get("seed")})
            for epoch, values in per_epoch:
                mlflow.log_metrics({k.replace("/", "_"): v for k, v in values.items()}, step=epoch)
            mlflow.log_metrics({k.replace("/", "_"): v for k, v in final.items()})


def log_run(metrics: dict, out_dir: Path, backends: Sequence[str] = BACKENDS) -> list[str]:
    """Log one run to each installed backend under ``out_dir``; return the backends used.

    TensorBoard events go to ``out_dir/tensorboard/<task>/<method>/seed-<seed>``; MLflow
    runs to the file store ``out_dir/mlruns`` (MLflow 3 reads it back with ``MLFLOW_ALLOW_FILE_STORE=true``).
    Backends whose library is missing are skipped.
    """
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        from xdistill.errors import XDistillError

        raise XDistillError(f"Unknown tracking backend(s) {', '.join(unknown)}. Available: {', '.join(BACKENDS)}.")
    out_dir = Path(out_dir)
    installed = available_backends()
    run_name = f"{metrics.get('task')}/{metrics.get('method')}/seed-{metrics.get('seed')}"
    used = []
    if "tensorboard" in backends and "tensorboard" in installed:
        _log_tensorboard(metrics, out_dir / "tensorboard" / run_name)
        used.append("tensorboard")
    if "mlflow" in backends and "mlflow" in installed:
        _log_mlflow(metrics, out_dir / "mlruns", run_name)
        used.append("mlflow")
    return used
