"""Scoring a saved classification student on a split of a task (``xdistill eval``)."""

from __future__ import annotations

from pathlib import Path

from xdistill.data.task import Task
from xdistill.errors import XDistillError
from xdistill.eval.predict import evaluate_split
from xdistill.students.io import load_student
from xdistill.train.inputs import StudentInputs


def evaluate_run(run_dir: str | Path, task: Task, split: str = "test") -> dict:
    """accuracy, macro_f1, ece, nll, per-class accuracy and n of the run's student on ``split``."""
    student, meta = load_student(run_dir)
    if split not in task.splits:
        raise XDistillError(f"Unknown split '{split}'. Choose one of {', '.join(task.splits)}.")
    if list(task.classes) != list(meta["classes"]):
        raise XDistillError(
            f"The student predicts classes {meta['classes']} but task '{task.name}' has {task.classes}. "
            "Score it on a task with the same classes."
        )
    shape = tuple(meta["architecture"]["input_shape"])
    if task.input != "text" and task.input_shape != shape:
        raise XDistillError(f"The student takes inputs of shape {shape}; task '{task.name}' has {task.input_shape}.")
    if task.input == "text":
        from xdistill.students.tokenize import tokenizer_from_meta

        inputs = StudentInputs("text", tokenizer_from_meta(meta["preprocessing"]))
    else:
        inputs = StudentInputs(task.input)
    return evaluate_split(student, inputs, task, split)
