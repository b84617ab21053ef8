"""Real run folders, distilled once per session on the tiny task, for the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_task, write_zoo
from xdistill.cli.main import main

# Four teacher and baseline methods, two epochs each: a few seconds in all.
RUN_METHODS = ("supervised", "weighted", "nearest", "partition")


def distill(task: Path, zoo: Path, cache: Path, method: str, out: Path, seed: int = 0) -> Path:
    """One tiny 'xdistill distill' through the real CLI; returns its --out folder."""
    try:
        main(["distill", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache), "--method", method,
              "--out", str(out), "--epochs", "2", f"seed={seed}", "progress=false", "batch_size=4"])
    except SystemExit as exc:
        assert exc.code == 0, f"distill {method} exited {exc.code}"
    return out


@pytest.fixture(scope="session")
def distilled_runs(tmp_path_factory) -> dict[str, Path]:
    """method -> run folder, every run on the same tiny task."""
    root = tmp_path_factory.mktemp("runs")
    task, zoo = write_task(root / "task"), write_zoo(root / "zoo", n_teachers=3)
    return {m: distill(task, zoo, root / "cache", m, root / f"run-{m}") for m in RUN_METHODS}
