"""Content fingerprints of splits, computed by streaming and cached beside the split.

The fingerprint keys the teacher-output cache, so it must change whenever a
split's content does, and hashing must not read a large split into memory or
read it twice:

- arrays (in memory or a memory-mapped ``x.npy``): sha256 of dtype, shape, the
  row-major bytes of ``x`` and the labels as int64, hashed in row chunks, so a
  split gives the same fingerprint whichever form (``.npz`` or an ``x.npy``
  folder) holds it;
- an image folder: sha256 of each image's path relative to the folder (which
  carries its class), byte length and file content, in sorted order, read in
  chunks, plus the decoded image shape. Moving or copying the folder keeps it.

For a split read from disk the result is stored in ``<split>.fingerprint.json``
beside it, keyed by the sizes and modification times of the split's files, and
reused while they are unchanged; when that folder is read-only it is kept in
memory for this process instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from xdistill.data.lazy import ImageFolderArray, release_pages
from xdistill.errors import XDistillError
from xdistill.io import atomic_write_text

HASH_CHUNK_BYTES = 8 * 1024 * 1024  # bytes hashed at a time
FINGERPRINT_SUFFIX = ".fingerprint.json"
_FORMAT = 1
_in_memory: dict[tuple[str, str], str] = {}  # (split path, stat key) -> fingerprint, for read-only folders


def fingerprint_arrays(x, y: np.ndarray | None) -> str:
    """sha256 of a split's content: inputs (text, or dtype, shape and bytes) and labels."""
    digest = hashlib.sha256()
    if x.dtype == object:
        digest.update(b"text")
        for text in x:
            encoded = str(text).encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
    else:
        digest.update(f"{x.dtype.str}{tuple(x.shape)}".encode())
        row_bytes = max(1, int(np.prod(x.shape[1:])) * x.dtype.itemsize)
        step = max(1, HASH_CHUNK_BYTES // row_bytes)
        for start in range(0, len(x), step):
            digest.update(np.ascontiguousarray(x[start:start + step]).data)
            release_pages(x)
    if y is not None:
        digest.update(b"labels")
        digest.update(np.ascontiguousarray(np.asarray(y).astype(np.int64)).data)
    return digest.hexdigest()


def fingerprint_image_folder(root: Path, images: ImageFolderArray) -> str:
    """sha256 of an image folder's files (relative path, length, content) in their sorted order."""
    digest = hashlib.sha256()
    digest.update(f"images{images.image_shape}".encode())
    for i in range(len(images)):
        path, relative = images.path(i), images.relative[i]
        digest.update(len(relative).to_bytes(8, "little"))
        digest.update(relative)
        digest.update(path.stat().st_size.to_bytes(8, "little"))
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _files_of(source: Path, x) -> Iterator[tuple[str, Path]]:
    """(relative name, path) of every file a split was read from, one at a time."""
    if isinstance(x, ImageFolderArray):
        yield from ((x.relative_path(i), x.path(i)) for i in range(len(x)))
    elif source.is_dir():
        yield from ((p.name, p) for p in (source / "x.npy", source / "y.npy") if p.is_file())
    else:
        yield source.name, source


def stat_key(files: Iterable[tuple[str, Path]]) -> str:
    """sha256 of the files' relative paths, sizes and modification times: what invalidates a stored fingerprint."""
    digest = hashlib.sha256()
    for relative, path in files:
        info = path.stat()
        digest.update(f"{relative}|{info.st_size}|{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def fingerprint_path(source: Path) -> Path:
    """Where a split's fingerprint is stored: ``<split>.fingerprint.json`` beside it."""
    return source.parent / f"{source.name}{FINGERPRINT_SUFFIX}"


def split_fingerprint(source: Path | None, x, y: np.ndarray | None) -> str:
    """The split's fingerprint; for a split read from ``source``, the stored one while its files are unchanged."""
    if source is None:
        return fingerprint_arrays(x, y)
    source = Path(source)
    key = stat_key(_files_of(source, x))
    stored_at = fingerprint_path(source)
    remembered = _in_memory.get((str(source.resolve()), key))
    if remembered is not None:
        return remembered
    try:
        stored = json.loads(stored_at.read_text(encoding="utf-8"))
        if isinstance(stored, dict) and stored.get("format") == _FORMAT and stored.get("stat_key") == key \
                and isinstance(stored.get("fingerprint"), str):
            return stored["fingerprint"]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        pass
    value = fingerprint_image_folder(source, x) if isinstance(x, ImageFolderArray) else fingerprint_arrays(x, y)
    record = {"format": _FORMAT, "stat_key": key, "fingerprint": value}
    try:
        if os.access(stored_at.parent, os.W_OK):
            atomic_write_text(stored_at, json.dumps(record, indent=2) + "\n")
            return value
    except XDistillError:
        pass
    _in_memory[(str(source.resolve()), key)] = value
    return value


__all__ = ["FINGERPRINT_SUFFIX", "fingerprint_arrays", "fingerprint_image_folder", "fingerprint_path",
           "split_fingerprint", "stat_key"]
