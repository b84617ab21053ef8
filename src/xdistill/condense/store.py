"""A condensed folder: ``condensed.npz`` (``x`` float32 in [0, 1] of the task's image shape, ``y`` hard labels,
``soft`` [N, C] when teachers labelled it), ``condense.json`` (method, settings, seed, iterations, wall time)
and ``condensed.png`` (the images, one row per class)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xdistill.condense.picture import condensed_grid_png
from xdistill.condense.teacher_labels import raw_layout
from xdistill.data.splits import soft_label_problems, validate_split_arrays
from xdistill.errors import XDistillError
from xdistill.io import atomic_write, atomic_write_bytes, atomic_write_json

ARRAYS = "condensed.npz"
RECORD = "condense.json"
PICTURE = "condensed.png"


@dataclass
class CondensedSet:
    """A condensed set read back: x in the task's raw layout ([N, H, W] or [N, H, W, C], float32 in [0, 1])."""

    x: np.ndarray
    y: np.ndarray
    soft: np.ndarray | None
    record: dict
    folder: Path


def is_condensed(folder: str | Path) -> bool:
    """Whether ``folder`` holds a condensed set (its condense.json)."""
    return (Path(folder) / RECORD).is_file()


def write_condensed(out: Path, x: np.ndarray, y: np.ndarray, soft: np.ndarray | None, record: dict,
                    num_classes: int) -> None:
    """x [N, C, H, W] in [0, 1]; every file atomically, condense.json last (it marks the folder complete)."""
    arrays = {"x": raw_layout(x), "y": np.asarray(y, dtype=np.int64)}
    if soft is not None:
        arrays["soft"] = np.asarray(soft, dtype=np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(out / ARRAYS, write)
    atomic_write_bytes(out / PICTURE, condensed_grid_png(np.asarray(x), np.asarray(y), num_classes))
    atomic_write_json(out / RECORD, record)


def read_condensed(folder: str | Path, classes: list[str] | None = None,
                   image_shape: tuple[int, ...] | None = None) -> CondensedSet:
    """Read and check a condensed folder; with ``classes`` and ``image_shape`` (one raw image's shape, e.g.
    (28, 28) or (32, 32, 3)) also that it fits a task."""
    folder = Path(folder)
    if not (folder / RECORD).is_file() or not (folder / ARRAYS).is_file():
        raise XDistillError(f"'{folder}' is not a condensed folder: it needs {RECORD} and {ARRAYS}. "
                            "Make one with `xdistill condense --task T --ipc N --method M --out DIR`.")
    try:
        record = json.loads((folder / RECORD).read_text())
        with open(folder / ARRAYS, "rb") as handle, np.load(io.BytesIO(handle.read()), allow_pickle=False) as data:
            x, y = data["x"], data["y"]
            soft = data["soft"] if "soft" in data.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise XDistillError(f"The condensed folder '{folder}' cannot be read ({exc}). Condense it again.") from exc
    names = record.get("classes") or classes or []
    problems = validate_split_arrays(x, y, "condensed", "image", len(names), require_labels=True)
    if soft is not None and not problems:
        problems += soft_label_problems(soft, len(x), len(names), "condensed")
    if classes is not None and list(names) != list(classes):
        problems.append(f"The condensed set's classes {names} differ from the task's {list(classes)}. "
                        "Condense the same task.")
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        problems.append(f"The condensed images are {'x'.join(map(str, x.shape[1:]))} but the task's are "
                        f"{'x'.join(map(str, image_shape))}. Condense the same task.")
    if problems:
        raise XDistillError("; ".join(f"{p} (folder '{folder}')" for p in problems))
    return CondensedSet(x.astype(np.float32), y.astype(np.int64), None if soft is None else soft.astype(np.float32),
                        record, folder)
