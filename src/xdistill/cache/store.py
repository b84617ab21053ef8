"""On-disk layout of the teacher-output cache.

    <root>/manifest.json                 index of complete entries + per-run query log
    <root>/entries/<key>/shard-00000.safetensors
    <root>/entries/<key>/entry.json      written last: the entry is complete

``key`` hashes (teacher fingerprint, split fingerprint, view, augmentation
seed). Each shard holds ``features`` and/or ``logits`` for a fixed range of
samples, and carries in its metadata the sha256 of its tensor bytes, its key
and its range; a shard is verified on every read. Files are written to a
temporary name and renamed, so a crash never leaves a half-written shard under
a real name; a lock file per entry keeps two processes from computing the
same entry at once (the second waits, then reuses the first's shards).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from xdistill import __version__
from xdistill.errors import XDistillError
from xdistill.io import atomic_write, atomic_write_json

FORMAT_VERSION = 1


def entry_key(teacher_fingerprint: str, split_fingerprint: str, view: int, augment_seed: int) -> str:
    raw = f"v{FORMAT_VERSION}|{teacher_fingerprint}|{split_fingerprint}|view={view}|seed={augment_seed}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def tensor_checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}".encode())
        digest.update(arr.data)
    return digest.hexdigest()


class CorruptShard(Exception):
    """A shard failed its checksum or belongs to another entry (internal)."""


@dataclass
class CachedOutputs:
    """A teacher's cached outputs on one split and view: its named arrays, each [N, ...]
    (classification: ``features`` [N, D] and ``logits`` [N, C_teacher], either may be absent)."""

    key: str
    arrays: dict[str, np.ndarray]

    @property
    def features(self) -> np.ndarray | None:
        return self.arrays.get("features")

    @property
    def logits(self) -> np.ndarray | None:
        return self.arrays.get("logits")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0


class CacheStore:
    """Reads and writes entries under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry_dir(self, key: str) -> Path:
        return self.root / "entries" / key

    def shard_path(self, key: str, index: int) -> Path:
        return self.entry_dir(key) / f"shard-{index:05d}.safetensors"

    def lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        return _locked(self.entry_dir(key) / ".lock")

    # shards ---------------------------------------------------------------
    def write_shard(self, key: str, index: int, start: int, stop: int, arrays: dict[str, np.ndarray]) -> str:
        from safetensors.numpy import save_file

        checksum = tensor_checksum(arrays)
        metadata = {"key": key, "start": str(start), "stop": str(stop), "sha256": checksum, "xdistill": __version__}
        # No fsync: every read verifies the checksum, so a shard a crash left damaged is recomputed,
        # and syncing each shard made extraction ~4% slower than the bare teacher passes (docs/benchmarks.md).
        atomic_write(self.shard_path(key, index), lambda tmp: save_file(arrays, str(tmp), metadata=metadata), fsync=False)
        return checksum

    def read_shard(self, key: str, index: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """Load and verify one shard; raises :class:`CorruptShard` if anything is off."""
        from safetensors import safe_open

        path = self.shard_path(key, index)
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
                arrays = {name: handle.get_tensor(name) for name in handle.keys()}
        except FileNotFoundError:
            raise
        except Exception as exc:  # safetensors raises its own error types for damaged headers
            raise CorruptShard(f"unreadable ({exc})") from exc
        if meta.get("key") != key or meta.get("start") != str(start) or meta.get("stop") != str(stop):
            raise CorruptShard("belongs to another entry or sample range (stale)")
        if tensor_checksum(arrays) != meta.get("sha256"):
            raise CorruptShard("checksum mismatch")
        n = stop - start
        if any(len(a) != n for a in arrays.values()):
            raise CorruptShard("wrong number of rows")
        return arrays

    # entries --------------------------------------------------------------
    def read_entry_info(self, key: str) -> dict[str, Any] | None:
        path = self.entry_dir(key) / "entry.json"
        if not path.is_file():
            return None
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return info if isinstance(info, dict) and info.get("format") == FORMAT_VERSION else None

    def write_entry_info(self, key: str, info: dict[str, Any]) -> None:
        # No fsync either: an entry.json a crash left unreadable counts as missing, and its shards are re-verified.
        text = json.dumps({"format": FORMAT_VERSION, "xdistill": __version__, **info}, indent=2) + "\n"
        atomic_write(self.entry_dir(key) / "entry.json", lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=False)

    def drop_entry_info(self, key: str) -> None:
        (self.entry_dir(key) / "entry.json").unlink(missing_ok=True)

    # manifest -------------------------------------------------------------
    def update_manifest(self, entries: dict[str, dict[str, Any]], run: dict[str, Any] | None = None) -> None:
        """Merge ``entries`` (and a run record) into ``manifest.json`` under a lock, atomically."""
        with _locked(self.root / ".manifest.lock"):
            path = self.root / "manifest.json"
            manifest: dict[str, Any] = {"format": FORMAT_VERSION, "entries": {}, "runs": []}
            if path.is_file():
                try:
                    loaded = json.loads(path.read_text())
                    if isinstance(loaded, dict):
                        manifest.update(loaded)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    pass
            manifest["xdistill"] = __version__
            manifest["entries"].update(entries)
            if run is not None:
                manifest["runs"] = (manifest.get("runs") or [])[-199:] + [run]
            atomic_write_json(path, manifest)

    def read_manifest(self) -> dict[str, Any]:
        path = self.root / "manifest.json"
        if not path.is_file():
            return {"format": FORMAT_VERSION, "entries": {}, "runs": []}
        return json.loads(path.read_text())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the file lock ``path``; a folder where it cannot be created is a user error, not a crash."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        lock.acquire()
    except OSError as exc:
        raise XDistillError(
            f"Cannot create the cache folder or lock file '{path}' ({exc.strerror}). "
            "The cache folder must be writable: choose another --cache folder."
        ) from exc
    try:
        yield
    finally:
        lock.release()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def pid() -> int:
    return os.getpid()
