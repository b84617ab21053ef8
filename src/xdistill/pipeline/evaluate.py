"""``xdistill eval``: score a saved run on a split of a task, by the run's kind."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from xdistill.errors import XDistillError
from xdistill.kinds import DEFAULT_KIND, KINDS, load_task


def run_kind(run_dir: Path) -> str:
    """The kind a run folder was trained for (its student.json or metrics.json), classification by default."""
    for name in ("student.json", "metrics.json"):
        path = run_dir / name
        if path.is_file():
            try:
                return str(json.loads(path.read_text()).get("kind", DEFAULT_KIND))
            except (json.JSONDecodeError, AttributeError):
                continue
    return DEFAULT_KIND


def run_task(run_dir: Path) -> str:
    """The task folder a run was trained on, from its saved config."""
    path = run_dir / "config.yaml"
    task = (yaml.safe_load(path.read_text()) or {}).get("task", "") if path.is_file() else ""
    if not task:
        raise XDistillError(f"'{run_dir}' does not say which task it was trained on. Pass --task DIR.")
    return str(task)


def evaluate_saved(run_dir: str | Path, task_dir: str | Path | None = None, split: str = "test") -> dict:
    """The run's scores on ``split`` of ``task_dir`` (default: the task it was trained on)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise XDistillError(f"The run folder '{run_dir}' does not exist. Give the --out folder of a finished run.")
    kind = KINDS.get(run_kind(run_dir))
    task = load_task(task_dir if task_dir is not None else run_task(run_dir))
    if getattr(task, "kind", DEFAULT_KIND) != run_kind(run_dir):
        raise XDistillError(f"The run in '{run_dir}' is a {run_kind(run_dir)} run, but task '{task.name}' is "
                            f"of kind {task.kind}. Score it on a task of its own kind.")
    return kind.evaluate(run_dir, task, split)
