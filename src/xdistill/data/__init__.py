"""Target tasks: a folder with ``task.yaml`` and three splits, or in-memory arrays.

    task = load_task("tasks/sk-digits")
    task.labeled.x, task.labeled.y, task.unlabeled.x, task.test.fingerprint
"""

from xdistill.data.task import (
    SPLIT_NAMES,
    TASK_INPUTS,
    Split,
    Task,
    load_task,
    save_task,
    task_from_arrays,
)
from xdistill.data.tensors import images_to_tensor

__all__ = [
    "TASK_INPUTS",
    "SPLIT_NAMES",
    "Split",
    "Task",
    "images_to_tensor",
    "load_task",
    "save_task",
    "task_from_arrays",
]
