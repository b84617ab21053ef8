"""A generation task: class-labelled real images in a ``train`` and a ``test`` split.

    kind: generation
    name: digits16
    classes: ["0", "1", ..., "9"]
    splits:
      train: train.npz          # x: uint8 [N, H, W] or [N, H, W, C]; y: int labels in 0..len(classes)-1
      test: test.npz

Both splits are checked before any work: a missing file, a file that is not an ``.npz``, missing arrays,
a wrong dtype or shape, labels outside the classes, or splits of different image shapes are errors naming
the file and the fix. Arrays are read without pickle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xdistill.config import load_task_yaml
from xdistill.errors import XDistillError, join_problems

KIND = "generation"
SPLITS = ("train", "test")
KEYS = ("kind", "name", "classes", "splits")


@dataclass
class ImageSplit:
    """One split: uint8 images [N, H, W] or [N, H, W, C], int64 labels [N] and a fingerprint of both."""

    name: str
    x: np.ndarray
    y: np.ndarray
    fingerprint: str
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class GenerationTask:
    name: str
    classes: list[str]
    splits: dict[str, ImageSplit]
    folder: Path | None = None
    kind: str = KIND
    modality: str = "image"
    extra: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of the task's images as networks read them."""
        x = self.splits["train"].x
        return (1, *x.shape[1:]) if x.ndim == 3 else (x.shape[3], x.shape[1], x.shape[2])


def images_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return "images-" + digest.hexdigest()[:32]


def make_split(name: str, x: np.ndarray, y: np.ndarray, path: Path | None = None) -> ImageSplit:
    x, y = np.ascontiguousarray(x, dtype=np.uint8), np.ascontiguousarray(y, dtype=np.int64)
    return ImageSplit(name, x, y, images_fingerprint(x, y), path)


def read_split(path: Path, num_classes: int) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """(x, y, problems) of one .npz split file."""
    if not path.is_file():
        return None, None, [f"'{path}' does not exist. Save the split with np.savez(path, x=images, y=labels)."]
    if path.suffix != ".npz":
        return None, None, [f"'{path}' must be an .npz file with arrays 'x' and 'y'. Got suffix {path.suffix!r}."]
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k in ("x", "y")}
            found = list(data.files)
    except (OSError, ValueError) as exc:
        return None, None, [f"'{path}' cannot be read as .npz ({exc}). Save it with np.savez."]
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        return None, None, [f"'{path}' has no array {', '.join(repr(k) for k in missing)} (found: "
                            f"{', '.join(repr(k) for k in found) or 'none'}). Save the images under 'x' and the "
                            "labels under 'y'."]
    x, y, problems = arrays["x"], arrays["y"], []
    if x.dtype != np.uint8:
        problems.append(f"'{path}': 'x' must be uint8 images (0..255). Got dtype {x.dtype}. Convert with "
                        "np.clip(np.rint(x * 255), 0, 255).astype(np.uint8) from [0, 1] floats.")
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
        problems.append(f"'{path}': 'x' must be N x H x W (grey) or N x H x W x C with C 1 or 3. Got shape {x.shape}.")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        problems.append(f"'{path}': 'y' must be a 1-D array of int class labels. Got {y.dtype} of shape {y.shape}.")
    elif len(y) != len(x):
        problems.append(f"'{path}': 'x' has {len(x)} images but 'y' {len(y)} labels. Give one label per image.")
    elif len(y) and (y.min() < 0 or y.max() >= num_classes):
        problems.append(f"'{path}': labels must lie in 0..{num_classes - 1} (one per entry of 'classes'). Got "
                        f"{int(y.min())}..{int(y.max())}.")
    if len(x) == 0:
        problems.append(f"'{path}' holds no images.")
    return (x, y, []) if not problems else (None, None, problems)


def load_generation_task(folder: Path) -> GenerationTask:
    """Read and check a generation task folder, reporting every problem at once."""
    path, raw = load_task_yaml(folder, "'kind', 'name', 'classes' and 'splits'")
    folder = path.parent
    problems = [f"Unknown key '{k}' for kind {KIND}. Valid keys: {', '.join(KEYS)}." for k in raw if k not in KEYS]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"'name' must be a non-empty string. Got {name!r}.")
    classes = raw.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or len({str(c) for c in classes}) != len(classes):
        problems.append(f"'classes' must be a list of two or more distinct class names. Got {classes!r}.")
        classes = None
    splits_raw = raw.get("splits")
    if not isinstance(splits_raw, dict):
        problems.append("'splits' must map train and test to their files, e.g. {train: train.npz, test: test.npz}.")
        splits_raw = {}
    problems += [f"'splits' has unknown split '{k}'. Valid splits: {', '.join(SPLITS)}." for k in splits_raw
                 if k not in SPLITS]
    splits = {}
    for split in SPLITS:
        value = splits_raw.get(split)
        if not isinstance(value, str) or not value:
            if isinstance(raw.get("splits"), dict):
                problems.append(f"'splits' has no '{split}' file. Name an .npz file for it.")
            continue
        if classes is None:
            continue
        x, y, found = read_split(folder / value, len(classes))
        problems += [f"split '{split}': {p}" for p in found]
        if not found:
            splits[split] = make_split(split, x, y, folder / value)
    if len(splits) == 2 and splits["train"].x.shape[1:] != splits["test"].x.shape[1:]:
        problems.append(f"train images are {splits['train'].x.shape[1:]} and test images "
                        f"{splits['test'].x.shape[1:]}. Give both splits one image shape.")
    if problems:
        raise XDistillError(join_problems(problems, f"Invalid task '{path}'"))
    return GenerationTask(str(name), [str(c) for c in classes], splits, folder)


def task_from_arrays(name: str, classes: list[str], train: tuple[np.ndarray, np.ndarray],
                     test: tuple[np.ndarray, np.ndarray]) -> GenerationTask:
    """A task from in-memory arrays."""
    return GenerationTask(name, list(classes), {"train": make_split("train", *train), "test": make_split("test", *test)})
