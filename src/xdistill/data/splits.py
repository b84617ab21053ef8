"""Reading, validating, fingerprinting and writing one split of a task.

Formats:
- ``.npz`` with ``x`` (images N×H×W or N×H×W×C as uint8 or float in [0, 1],
  or N×D float features) and ``y`` (int labels; absent in ``unlabeled``);
  read with ``allow_pickle=False``.
- a split folder holding ``x.npy`` (and ``y.npy`` for labeled splits), opened
  memory-mapped and never read whole (see :mod:`xdistill.data.lazy`);
- an image folder: one sub-folder per class (named as in ``classes``); an
  unlabeled folder may be flat. Images are decoded on demand.
- ``.jsonl`` / ``.csv`` with ``text`` and ``label`` columns for text tasks
  (``label`` is a class name or index; absent or empty in ``unlabeled``).

A labeled ``.npz`` may also hold ``soft`` [N, C]: float target-space
probabilities (each row non-negative, summing to 1), for example a condensed
set's soft labels (``xdistill condense``); a split folder may hold them as
``soft.npy``. Training uses them for those rows; they are never dropped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from xdistill.data.fingerprint import fingerprint_arrays
from xdistill.data.lazy import ImageFolderArray, bounded_rows, decode_image, evenly_spaced, release_pages
from xdistill.errors import XDistillError
from xdistill.io import atomic_write, atomic_write_text, unusable_path

WRITE_CHUNK_ROWS = 65_536
VALIDATION_HEADERS = 2_000  # image-folder files whose headers are read at load time (an evenly spaced sample)  # rows copied at a time when writing an x.npy split folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def validate_split_arrays(x: np.ndarray, y: np.ndarray | None, name: str, input: str, num_classes: int,
                          require_labels: bool) -> list[str]:
    """Every problem with one split's arrays, as messages (empty when valid).

    The values of a lazy ``x`` (memory-mapped or an image folder) are checked on an evenly spaced
    sample of :data:`xdistill.data.lazy.VALIDATION_ROWS` rows, so loading never reads a large
    pool whole; its shape and dtype are checked in full.
    """
    problems: list[str] = []
    where = f"split '{name}'"
    if x.ndim == 0:
        return [f"The {where} 'x' must hold one row per sample. Got a single value (shape ())."]
    if len(x) == 0:
        return [f"The {where} is empty. Give it at least one sample."]
    if input == "text":
        bad = [i for i, t in enumerate(x[:100000]) if not isinstance(t, str)]
        if bad:
            problems.append(f"The {where} must hold strings; sample {bad[0]} is {type(x[bad[0]]).__name__}.")
    else:
        if x.dtype == object or x.dtype.kind not in "uif":
            problems.append(f"The {where} 'x' must be numeric (uint8 or float). Got dtype {x.dtype}.")
        elif input == "image":
            if x.ndim not in (3, 4):
                problems.append(
                    f"The {where} holds images, so 'x' must be N×H×W or N×H×W×C. Got shape {x.shape}. "
                    "For feature vectors set 'input: features'."
                )
            elif x.ndim == 4 and x.shape[3] not in (1, 3, 4):
                problems.append(f"The {where} images must have 1, 3 or 4 channels last (N×H×W×C). Got shape {x.shape}.")
            elif min(x.shape[1:3]) < 1:
                problems.append(f"The {where} images must be at least 1×1 pixels. Got shape {x.shape}.")
            if x.dtype.kind == "f":
                values = bounded_rows(x)
                if not np.isfinite(values).all():
                    problems.append(f"The {where} 'x' contains NaN or inf. Remove or fix those samples.")
                elif values.size and (values.min() < 0 or values.max() > 1):
                    problems.append(
                        f"The {where} float images must lie in [0, 1]. Got values in [{values.min():.3g}, "
                        f"{values.max():.3g}]. "
                        "Divide uint8 images by 255 or store them as uint8."
                    )
            elif x.dtype != np.uint8:
                problems.append(f"The {where} integer images must be uint8. Got {x.dtype}.")
        elif input == "features":
            if x.ndim != 2 or x.shape[1] < 1:
                problems.append(f"The {where} holds feature vectors, so 'x' must be N×D with D >= 1. Got shape {x.shape}.")
            elif not np.isfinite(bounded_rows(x)).all():
                problems.append(f"The {where} 'x' contains NaN or inf. Remove or fix those samples.")
    if y is None:
        if require_labels:
            problems.append(f"The {where} needs labels 'y'. Add an integer array 'y' of length {len(x)}.")
        return problems
    if y.ndim != 1 or len(y) != len(x):
        problems.append(f"The {where} labels 'y' must be a 1-D array of length {len(x)} (one per sample). Got shape {y.shape}.")
        return problems
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            problems.append(f"The {where} labels 'y' must be integers. Got non-integer values such as {y[~(y == np.round(y))][:3]}.")
            return problems
    elif y.dtype.kind not in "iu":
        problems.append(f"The {where} labels 'y' must be integers 0..{num_classes - 1}. Got dtype {y.dtype}.")
        return problems
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        problems.append(
            f"The {where} labels must lie in 0..{num_classes - 1} (the task has {num_classes} classes). "
            f"Got {sorted(set(y[bad].tolist()))[:5]}. Fix the labels or the task's 'classes' list."
        )
    return problems


SOFT_ROW_TOLERANCE = 1e-3  # |sum of a soft-label row - 1| accepted (float32 probabilities written by other tools)


def load_soft_labels(path: Path, name: str, n: int, num_classes: int) -> np.ndarray | None:
    """The ``soft`` array [N, C] (float32) of an ``.npz`` split or ``soft.npy`` of a split folder, validated;
    None when there is none. Soft labels belong to the labeled split: elsewhere they are an error, not dropped."""
    soft = None
    if path.is_dir() and (path / "soft.npy").is_file():
        soft = _load_npy(path / "soft.npy", mmap=False)
    elif path.suffix == ".npz" and path.is_file():
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            soft = data["soft"] if "soft" in data.files else None
    if soft is None:
        return None
    if name != "labeled":
        raise XDistillError(f"The split '{name}' ('{path}') holds soft labels 'soft', which only the labeled split "
                            "uses. Move them to the labeled split or remove the array.")
    problems = soft_label_problems(soft, n, num_classes, name)
    if problems:
        raise XDistillError("; ".join(f"{p} (file '{path}')" for p in problems))
    return np.asarray(soft, dtype=np.float32)


def soft_label_problems(soft: np.ndarray, n: int, num_classes: int, name: str = "labeled") -> list[str]:
    """Every problem with soft labels [N, C]: shape, finite non-negative values, rows summing to 1."""
    where = f"The split '{name}' soft labels 'soft'"
    if not isinstance(soft, np.ndarray) or soft.dtype.kind not in "fiu":
        return [f"{where} must be a float array [N, C]. Got {type(soft).__name__}"
                f"{'' if not isinstance(soft, np.ndarray) else ' of dtype ' + str(soft.dtype)}."]
    if soft.shape != (n, num_classes):
        return [f"{where} must have shape [{n}, {num_classes}] (one row of class probabilities per sample). "
                f"Got {list(soft.shape)}."]
    values = soft.astype(np.float64)
    if not np.isfinite(values).all() or (values < 0).any():
        return [f"{where} must be finite and >= 0. Fix or remove the bad rows."]
    sums = values.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > SOFT_ROW_TOLERANCE)
    if len(bad):
        return [f"{where} must sum to 1 in every row. Row {int(bad[0])} sums to {sums[bad[0]]:.4g}. "
                "Normalise each row (soft / soft.sum(1, keepdims=True))."]
    return []


def fingerprint_split(x: np.ndarray, y: np.ndarray | None) -> str:
    """sha256 of a split's content (inputs, dtype, shape and labels), hashed in chunks."""
    return fingerprint_arrays(x, y)


def load_split_file(path: Path, name: str, input: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one split from ``path`` and validate it."""
    require_labels = name != "unlabeled"
    reason = unusable_path(path)
    if reason:
        raise XDistillError(f"The split '{name}' file {str(path)!r} cannot be read ({reason}). Check 'splits.{name}' in task.yaml.")
    if not path.exists():
        raise XDistillError(f"The split '{name}' file '{path}' does not exist. Check 'splits.{name}' in task.yaml.")
    if path.is_dir() and (path / "x.npy").is_file():
        x, y = _load_npy_folder(path, name)
    elif path.is_dir():
        x, y = _load_image_folder(path, name, classes, require_labels)
    elif path.suffix == ".npz":
        x, y = _load_npz(path, name)
    elif path.suffix in (".jsonl", ".csv"):
        x, y = _load_text_table(path, name, classes)
    else:
        raise XDistillError(
            f"The split '{name}' file '{path}' has an unsupported format '{path.suffix}'. "
            "Use .npz, a folder holding x.npy (and y.npy), an image folder, or .jsonl/.csv for text."
        )
    if input == "text" and x.dtype != object:
        raise XDistillError(f"The task input is 'text' but split '{name}' ('{path.name}') holds arrays. Use .jsonl or .csv with a 'text' column.")
    if input != "text" and x.dtype == object:
        raise XDistillError(f"The task input is '{input}' but split '{name}' ('{path.name}') holds text. Set 'input: text'.")
    problems = validate_split_arrays(x, y, name, input, len(classes), require_labels)
    if problems:
        raise XDistillError("; ".join(f"{p} (file '{path}')" for p in problems))
    return x, None if y is None else y.astype(np.int64)


def _load_npz(path: Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        # Our own handle: np.load leaks the one it opens when the zip directory is unreadable.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            keys = list(data.keys())
            if "x" not in keys:
                found = ", ".join(repr(k) for k in keys) or "nothing"
                raise XDistillError(f"{path.name} has no array 'x' (found: {found}). Save the inputs under 'x'.")
            x = data["x"]
            y = data["y"] if "y" in keys else None
            # np.load hands back the raw bytes of a member that is not in .npy format.
            for key, value in (("x", x), ("y", y)):
                if value is not None and not isinstance(value, np.ndarray):
                    raise XDistillError(f"{path.name}: '{key}' is not a numpy array. Re-create the file with numpy.savez.")
    except XDistillError:
        raise
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise XDistillError(
                f"{path.name} holds object arrays, which would need unpickling; xdistill refuses to unpickle data files. "
                "Save plain numeric arrays."
            ) from exc
        if "pickle" in str(exc).lower():  # neither .npz nor .npy: np.load would have unpickled it
            raise XDistillError(
                f"{path.name} is not an .npz file, and xdistill refuses to unpickle data files. Re-create it with numpy.savez."
            ) from exc
        raise XDistillError(f"{path.name} is not a readable .npz file ({exc}).") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise XDistillError(f"{path.name} is not a readable .npz file ({exc}). Re-create it with numpy.savez.") from exc
    return x, y


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise XDistillError(
                f"'{path}' holds object arrays, which would need unpickling; xdistill refuses to unpickle data files. "
                "Save plain numeric arrays with numpy.save."
            ) from exc
        raise XDistillError(f"'{path}' is not a readable .npy file ({exc}). Re-create it with numpy.save.") from exc
    except (OSError, EOFError) as exc:
        raise XDistillError(f"'{path}' is not a readable .npy file ({exc}). Re-create it with numpy.save.") from exc
    return array


def _load_npy_folder(path: Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``x.npy`` memory-mapped (read on demand), ``y.npy`` (labels, small) read whole when present."""
    x = _load_npy(path / "x.npy", mmap=True)
    y = _load_npy(path / "y.npy", mmap=False) if (path / "y.npy").is_file() else None
    return x, y


_load_image = decode_image  # the decoder of image folders, kept under its former name


def _image_names(folder: Path) -> list[str]:
    """Sorted names of the image files directly in ``folder`` (read with scandir: no stat per file)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def _load_image_folder(path: Path, name: str, classes: list[str], require_labels: bool) -> tuple[ImageFolderArray, np.ndarray | None]:
    with os.scandir(path) as entries:
        subdirs = sorted(e.name for e in entries if e.is_dir())
    flat = [] if subdirs else _image_names(path)
    files: list[str] = []
    labels: list[int] = []
    if subdirs:
        unknown = [d for d in subdirs if d not in classes]
        if unknown:
            raise XDistillError(
                f"The image folder '{path}' has sub-folders {unknown} that are not classes of the task "
                f"({', '.join(classes)}). Rename them to class names."
            )
        for d in subdirs:
            names = _image_names(path / d)
            files += [f"{d}/{f}" for f in names]
            labels += [classes.index(d)] * len(names)
    elif flat:
        if require_labels:
            raise XDistillError(
                f"The image folder '{path}' for split '{name}' is flat, but this split needs labels. "
                "Put each image in a sub-folder named after its class."
            )
        files = flat
    if not files:
        raise XDistillError(f"The image folder '{path}' for split '{name}' holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    x = ImageFolderArray(path, files, decode_image(path / files[0]).shape)
    _check_image_sizes(path, x)
    return x, (np.asarray(labels, dtype=np.int64) if subdirs else None)


def _check_image_sizes(path: Path, images: ImageFolderArray) -> None:
    """Image sizes read from the headers of an evenly spaced sample of the files (no pixels decoded);
    every image is also checked when it is decoded."""
    from PIL import Image, UnidentifiedImageError

    first = images.image_shape
    for i in evenly_spaced(len(images), VALIDATION_HEADERS).tolist():
        file = images.path(i)
        try:
            with Image.open(file) as image:
                shape = (image.size[1], image.size[0])
                grey = image.mode == "L"
        except (UnidentifiedImageError, OSError) as exc:
            raise XDistillError(f"Cannot read image '{file}' ({exc}). Remove it or replace it with a valid image.") from exc
        if shape != first[:2] or grey != (len(first) == 2):
            raise XDistillError(
                f"The images of '{path}' have mixed sizes: '{file.name}' is {shape[0]}x{shape[1]}"
                f"{' grey' if grey else ''}, '{images.path(0).name}' is {first}. Resize them to one size."
            )


def _label_index(value: object, classes: list[str], where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value in classes:
        return classes.index(value)
    try:
        index = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise XDistillError(f"{where}: label {value!r} is not one of the classes ({', '.join(classes)}) nor an index.") from None
    if not 0 <= index < len(classes):
        raise XDistillError(f"{where}: label {index} is outside 0..{len(classes) - 1}. Fix the label or the task's classes.")
    return index


def _load_text_table(path: Path, name: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    rows: list[dict] = []
    try:
        if path.suffix == ".jsonl":
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise XDistillError(f"{path.name} line {lineno} is not valid JSON ({exc.msg}).") from exc
                if not isinstance(row, dict):
                    raise XDistillError(f"{path.name} line {lineno} must be a JSON object with 'text' and 'label'.")
                rows.append(row)
        else:
            rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except UnicodeDecodeError as exc:
        raise XDistillError(f"{path.name} is not UTF-8 text.") from exc
    if not rows:
        raise XDistillError(f"The split '{name}' file '{path}' is empty. Give it at least one sample.")
    texts, labels = [], []
    for i, row in enumerate(rows):
        if "text" not in row or not isinstance(row["text"], str):
            raise XDistillError(f"{path.name} row {i + 1} has no string column 'text' (found: {', '.join(row)}).")
        texts.append(row["text"])
        labels.append(_label_index(row.get("label"), classes, f"{path.name} row {i + 1}"))
    x = np.empty(len(texts), dtype=object)
    x[:] = texts
    if all(label is None for label in labels):
        return x, None
    if any(label is None for label in labels):
        missing = labels.index(None) + 1
        raise XDistillError(f"{path.name} row {missing} has no label while others do. Label every row or none.")
    return x, np.asarray(labels, dtype=np.int64)


def save_split_folder(path: Path, x, y: np.ndarray | None) -> Path:
    """Write one split as a folder holding ``x.npy`` (and ``y.npy``), the form read memory-mapped.

    ``x`` may itself be lazy (a memory map, an image folder): it is copied
    :data:`WRITE_CHUNK_ROWS` rows at a time, each file written atomically.
    """
    path = Path(path)
    if x.dtype == object:
        raise XDistillError(f"A split folder holds arrays; split '{path.name}' holds text. Save it as .jsonl.")

    def write_x(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=x.dtype, shape=tuple(x.shape))
        for start in range(0, len(x), WRITE_CHUNK_ROWS):
            out[start:start + WRITE_CHUNK_ROWS] = x[start:start + WRITE_CHUNK_ROWS]
            out.flush()
            release_pages(out)
            release_pages(x)
        del out

    def write_y(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, np.asarray(y, dtype=np.int64), allow_pickle=False)

    atomic_write(path / "x.npy", write_x)
    if y is not None:
        atomic_write(path / "y.npy", write_y)
    else:
        (path / "y.npy").unlink(missing_ok=True)
    return path


def save_split_file(path: Path, x: np.ndarray, y: np.ndarray | None, input: str, classes: list[str],
                    soft: np.ndarray | None = None) -> Path:
    """Write one split atomically as ``.npz`` (arrays, with ``soft`` [N, C] when given) or ``.jsonl`` (text)."""
    if soft is not None and input == "text":
        raise XDistillError(f"Soft labels of split '{path.name}' need an .npz split; text splits are .jsonl. "
                            "Keep soft labels for image or feature tasks.")
    if input == "text":
        lines = []
        for i, text in enumerate(x):
            row = {"text": str(text)}
            if y is not None:
                row["label"] = classes[int(y[i])]
            lines.append(json.dumps(row, ensure_ascii=False))
        return atomic_write_text(path, "\n".join(lines) + "\n")

    def write(tmp: Path) -> None:
        arrays = {"x": x} if y is None else {"x": x, "y": y}
        if soft is not None:
            arrays["soft"] = np.asarray(soft, dtype=np.float32)
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    return atomic_write(path, write)
