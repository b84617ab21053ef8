"""The target task: class names, input kind and the labeled/unlabeled/test splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from xdistill.config import load_yaml
from xdistill.data.fingerprint import split_fingerprint
from xdistill.data.lazy import is_lazy
from xdistill.data.splits import (
    load_soft_labels,
    load_split_file,
    save_split_file,
    save_split_folder,
    soft_label_problems,
    validate_split_arrays,
)
from xdistill.errors import XDistillError, join_problems
from xdistill.io import atomic_write, atomic_write_text, unusable_path

TASK_INPUTS = ("image", "features", "text")  # what a classification task's samples are
SPLIT_NAMES = ("labeled", "unlabeled", "test")
_TASK_KEYS = ("name", "classes", "input", "splits", "description", "kind")


@dataclass
class Split:
    """One split of a target task.

    x: images [N, H, W] or [N, H, W, C] (uint8, or float in [0, 1]); feature
       vectors [N, D] (float); or texts (object array of str, length N). A
       large split is lazy: a read-only memory map of ``x.npy`` or an
       :class:`~xdistill.data.lazy.ImageFolderArray`; index it (``x[idx]``),
       never convert it whole.
    y: int64 labels [N] in 0..C-1, or None for the unlabeled split.
    fingerprint: sha256 of the split's content, used to key the cache.
    source: the file or folder it was read from (None when built in memory).
    soft: float32 target-space probabilities [N, C] of a labeled split (rows sum to 1), or None;
       training fits these rows to them instead of their one-hot labels.
    """

    name: str
    x: np.ndarray
    y: np.ndarray | None
    fingerprint: str = ""
    source: Path | None = None
    soft: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as a student sees it: (C, H, W), (D,) or () for text."""
        if self.x.dtype == object:
            return ()
        if self.x.ndim == 2:
            return (self.x.shape[1],)
        if self.x.ndim == 3:
            return (1, self.x.shape[1], self.x.shape[2])
        return (self.x.shape[3], self.x.shape[1], self.x.shape[2])


@dataclass
class Task:
    """A target task: what the student must learn, with few labels."""

    name: str
    classes: list[str]
    input: str
    splits: dict[str, Split]
    description: str = ""
    root: Path | None = None
    kind: str = "classification"  # the task kind (xdistill.kinds) this loader serves

    @property
    def modality(self) -> str:
        """What the task's teachers read: its input."""
        return self.input

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def labeled(self) -> Split:
        return self.splits["labeled"]

    @property
    def unlabeled(self) -> Split:
        return self.splits["unlabeled"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.labeled.input_shape

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input": self.input,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "splits": {name: {"n": len(s), "fingerprint": s.fingerprint} for name, s in self.splits.items()},
        }


def _validate_header(raw: Any, path: Path) -> list[str]:
    problems: list[str] = []
    if not isinstance(raw, dict):
        return [f"task.yaml must hold a mapping with keys {', '.join(_TASK_KEYS[:4])}. Got {type(raw).__name__}."]
    for key in raw:
        if key not in _TASK_KEYS:
            import difflib

            close = difflib.get_close_matches(str(key), _TASK_KEYS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            problems.append(f"Unknown key '{key}'.{hint} Valid keys: {', '.join(_TASK_KEYS)}.")
    if raw.get("kind", "classification") != "classification":
        problems.append(f"This loader reads classification tasks; the file declares kind {raw['kind']!r}. "
                        "Load it with xdistill.kinds.load_task.")
    for key in ("name", "classes", "input", "splits"):
        if key not in raw:
            problems.append(f"Missing required key '{key}'.")
    if "name" in raw and (not isinstance(raw["name"], str) or not raw["name"].strip()):
        problems.append(f"'name' must be a non-empty string. Got {raw['name']!r}.")
    classes = raw.get("classes")
    if "classes" in raw:
        if not isinstance(classes, list) or len(classes) < 2:
            problems.append(f"'classes' must be a list of at least 2 class names. Got {classes!r}.")
        elif len({str(c) for c in classes}) != len(classes):
            problems.append(f"'classes' must not repeat a name. Got {classes!r}.")
    if "input" in raw and raw["input"] not in TASK_INPUTS:
        problems.append(f"'input' must be one of {', '.join(TASK_INPUTS)}. Got {raw['input']!r}.")
    splits = raw.get("splits")
    if "splits" in raw:
        if not isinstance(splits, dict):
            problems.append(f"'splits' must map {', '.join(SPLIT_NAMES)} to files. Got {splits!r}.")
        else:
            for name in SPLIT_NAMES:
                if name not in splits:
                    problems.append(f"'splits' has no '{name}' entry. Add '{name}: {name}.npz' (or a folder).")
            for name in splits:
                if name not in SPLIT_NAMES:
                    problems.append(f"Unknown split '{name}'. Valid splits: {', '.join(SPLIT_NAMES)}.")
                elif not isinstance(splits[name], str):
                    problems.append(f"'splits.{name}' must be a file or folder name. Got {splits[name]!r}.")
    return problems


def load_task(path: str | Path) -> Task:
    """Load and validate a task folder (or its ``task.yaml``), reporting every problem at once."""
    path = Path(path)
    root = path.parent if path.suffix in (".yaml", ".yml") else path
    yaml_path = path if path.suffix in (".yaml", ".yml") else path / "task.yaml"
    reason = unusable_path(yaml_path)
    if reason:
        raise XDistillError(f"The task {str(path)!r} cannot be read ({reason}). Give a folder holding task.yaml.")
    if not root.is_dir():
        raise XDistillError(f"The task folder '{root}' does not exist. Give a folder holding task.yaml.")
    if not yaml_path.is_file():
        raise XDistillError(f"The task folder '{root}' has no task.yaml. Create one with name, classes, input and splits.")
    raw = load_yaml(yaml_path, "task file")
    problems = _validate_header(raw, yaml_path)
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid task file '{yaml_path}'"))
    classes = [str(c) for c in raw["classes"]]
    splits: dict[str, Split] = {}
    for name in SPLIT_NAMES:
        try:
            x, y = load_split_file(root / raw["splits"][name], name, raw["input"], classes)
            soft = load_soft_labels(root / raw["splits"][name], name, len(x), len(classes))
        except XDistillError as exc:
            problems.append(str(exc))
            continue
        splits[name] = Split(name, x, y, source=root / raw["splits"][name], soft=soft)
    if "labeled" in splits:
        problems += unlabeled_class_problems(classes, splits["labeled"].y)
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid task '{root}'"))
    return _finish(str(raw["name"]), classes, raw["input"], splits, str(raw.get("description", "")), root)


def task_from_arrays(
    name: str,
    classes: Sequence[str],
    labeled: tuple[Any, Any],
    unlabeled: Any,
    test: tuple[Any, Any],
    input: str | None = None,
    description: str = "",
    soft: Any = None,
) -> Task:
    """Build a task from in-memory arrays (``labeled=(x, y)``, ``unlabeled=x``, ``test=(x, y)``).

    ``soft`` [N_labeled, C]: optional soft labels of the labeled split (rows sum to 1).

    ``input`` is inferred when omitted: a list of strings is text, 2-D float
    arrays are feature vectors, anything else is images.
    """
    classes = [str(c) for c in classes]
    if len(classes) < 2:
        raise XDistillError(f"A task needs at least 2 classes. Got {classes!r}.")
    lx = labeled[0]
    if input is None:
        if isinstance(lx, (list, tuple)) or (isinstance(lx, np.ndarray) and lx.dtype.kind in "OUS"):
            input = "text"
        elif np.asarray(lx).ndim == 2:
            input = "features"
        else:
            input = "image"
    if input not in TASK_INPUTS:
        raise XDistillError(f"'input' must be one of {', '.join(TASK_INPUTS)}. Got {input!r}.")
    splits = {}
    problems = []
    for split_name, (x, y) in {"labeled": labeled, "unlabeled": (unlabeled, None), "test": test}.items():
        x = np.array(list(x), dtype=object) if input == "text" else np.asarray(x)
        y = None if y is None else np.asarray(y)
        problems += validate_split_arrays(x, y, split_name, input, len(classes), require_labels=split_name != "unlabeled")
        splits[split_name] = Split(split_name, x, None if y is None else y.astype(np.int64))
    if soft is not None:
        soft = np.asarray(soft)
        problems += soft_label_problems(soft, len(splits["labeled"]), len(classes))
        splits["labeled"].soft = soft.astype(np.float32)
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid task '{name}'"))
    return _finish(name, classes, input, splits, description, None)


def unlabeled_class_problems(classes: Sequence[str], labels: np.ndarray) -> list[str]:
    """A problem naming every class of ``classes`` without a labeled example in ``labels [N]``.

    One labeled example per class is the least the teachers can be bridged and
    ranked with; a class without any cannot be learned from labels nor mapped to.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    missing = [classes[c] for c in np.flatnonzero(counts == 0)]
    if not missing:
        return []
    names = ", ".join(repr(c) for c in missing)
    problem = (
        f"The labeled split has no example of {'class' if len(missing) == 1 else 'classes'} {names} "
        f"({len(missing)} of {len(classes)} classes). Every class needs at least one labeled example: "
        "label one of each, or remove those classes from 'classes'."
    )
    return [problem]


def _finish(name: str, classes: list[str], input: str, splits: dict[str, Split], description: str,
            root: Path | None) -> Task:
    problems = unlabeled_class_problems(classes, splits["labeled"].y)
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid task '{name}'"))
    if input == "image":
        shapes = {n: s.x.shape[1:] if s.x.ndim == 4 else (*s.x.shape[1:], 1) for n, s in splits.items()}
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"{n}: {'x'.join(map(str, v))}" for n, v in shapes.items())
            raise XDistillError(
                f"All splits of task '{name}' must have the same image size and channels. Got {listed}. "
                "Resize the images to one size."
            )
    elif input == "features":
        dims = {n: s.x.shape[1] for n, s in splits.items()}
        if len(set(dims.values())) > 1:
            raise XDistillError(f"All splits of task '{name}' must have the same feature dimension. Got {dims}.")
    for split in splits.values():
        # A lazy split's fingerprint is stored beside it, so a large pool is hashed once, not on every load.
        split.fingerprint = split_fingerprint(split.source if is_lazy(split.x) else None, split.x, split.y)
    return Task(name=name, classes=classes, input=input, splits=splits, description=description, root=root)


SPLIT_LAYOUTS = ("npz", "npy")  # how save_task writes array splits: one .npz, or a folder of x.npy (+ y.npy)


def save_task(task: Task, folder: str | Path, layout: str = "npz") -> Path:
    """Write a task as a folder: ``task.yaml`` plus one ``.npz`` (or ``.jsonl`` for text) per split.

    ``layout="npy"`` writes each array split as a folder ``<split>/`` holding ``x.npy`` (and
    ``y.npy``), the form that is read memory-mapped; the inputs are copied in chunks, so a lazy
    split is never held whole.
    """
    if layout not in SPLIT_LAYOUTS:
        raise XDistillError(f"The 'layout' of save_task must be one of {', '.join(SPLIT_LAYOUTS)}. Got {layout!r}.")
    folder = Path(folder)
    names = {}
    for name, split in task.splits.items():
        if task.input != "text" and layout == "npy":
            save_split_folder(folder / name, split.x, split.y)
            if split.soft is not None:
                atomic_write(folder / name / "soft.npy", lambda tmp, soft=split.soft: _save_npy(tmp, soft))
            names[name] = name
            continue
        filename = f"{name}.jsonl" if task.input == "text" else f"{name}.npz"
        save_split_file(folder / filename, split.x, split.y, task.input, task.classes, soft=split.soft)
        names[name] = filename
    header = {"name": task.name, "classes": list(task.classes), "input": task.input, "splits": names}
    if task.description:
        header["description"] = task.description
    atomic_write_text(folder / "task.yaml", yaml.safe_dump(header, sort_keys=False))
    return folder


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save appends '.npy' to a bare path
        np.save(handle, array, allow_pickle=False)


def replace_split(task: Task, name: str, x: np.ndarray, y: np.ndarray | None, soft: np.ndarray | None = None) -> Task:
    """A copy of ``task`` with one split replaced (fingerprints recomputed); ``soft`` [N, C] for a labeled split."""
    splits = dict(task.splits)
    splits[name] = Split(name, x, y, soft=soft)
    return _finish(task.name, task.classes, task.input, splits, task.description, task.root)


__all__ = ["SPLIT_NAMES", "TASK_INPUTS", "Split", "Task", "load_task", "replace_split", "save_task", "task_from_arrays",
           "unlabeled_class_problems"]
