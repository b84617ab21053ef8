"""``xdistill eval``: score a saved run on a split of a task, by the run's kind."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from xdistill.errors import XDistillError
from xdistill.kinds import DEFAULT_KIND, KINDS, load_task


def folder_kind(folder: Path) -> str | None:
    """The kind that owns a folder which is no run (a teacher folder a kind can score or sample), if any."""
    for name, kind in KINDS.items():
        if kind.owns is not None and kind.owns(folder):
            return name
    return None


def run_kind(run_dir: Path) -> str:
    """The kind a run folder was trained for (its student.json or metrics.json), or of the teacher folder a kind
    owns; classification by default."""
    if not (run_dir / "student.json").is_file() and not (run_dir / "metrics.json").is_file():
        return folder_kind(run_dir) or DEFAULT_KIND
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


def evaluate_saved(run_dir: str | Path, task_dir: str | Path | None = None, split: str = "test", **options) -> dict:
    """The run's scores on ``split`` of ``task_dir`` (default: the task it was trained on); ``options`` go to the
    kind's evaluation (generation: ``steps``, ``guidance``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise XDistillError(f"The run folder '{run_dir}' does not exist. Give the --out folder of a finished run.")
    kind = KINDS.get(run_kind(run_dir))
    if task_dir is None and not (run_dir / "config.yaml").is_file() and folder_kind(run_dir) is not None:
        raise XDistillError(f"'{run_dir}' is a teacher folder; it names no task. Pass --task DIR to score it on.")
    task = load_task(task_dir if task_dir is not None else run_task(run_dir))
    if getattr(task, "kind", DEFAULT_KIND) != run_kind(run_dir):
        raise XDistillError(f"The run in '{run_dir}' is a {run_kind(run_dir)} run, but task '{task.name}' is "
                            f"of kind {task.kind}. Score it on a task of its own kind.")
    return kind.evaluate(run_dir, task, split, **options)
