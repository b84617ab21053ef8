"""Atomic writes and content hashing.

Every cache shard, checkpoint and report is written to a temporary file in the
destination folder and moved into place with ``os.replace``, so a reader sees
either the old file or the complete new one, never a half-written file. The
temporary file is created private (0600); before the move it gets the mode a plain
``open(path, "w")`` would have given it, 0666 less the process's umask.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xdistill.errors import XDistillError

_CHUNK = 1 << 20
# safetensors' writer (Rust) reports a failed write as its own error type: "... (os error 28)".
_WRAPPED_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _read_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # os.umask can only be read by setting it: done once, at import, before any worker thread writes.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once: setting the umask to read it is process-global and races with other threads.
FILE_MODE = 0o666 & ~_read_umask()


def _set_file_mode(tmp: Path) -> None:
    try:
        os.chmod(tmp, FILE_MODE)
    except OSError as exc:
        # File systems without Unix modes (FAT, some network mounts) refuse chmod; their files keep the mount's mode.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def _describe_os_error(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"No space left on the device while writing '{path}'. Free some space or point the output elsewhere."
    if exc.errno in (errno.EDQUOT, errno.EFBIG):
        return f"Cannot write '{path}': {exc.strerror}. Free some space, raise the limit or point the output elsewhere."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write '{path}': the folder is read-only or not writable ({exc.strerror}). Choose a writable folder."
    return f"Cannot write '{path}': {exc.strerror or exc}."


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], fsync: bool = True) -> Path:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` onto ``path``.

    The temporary file lives in the same folder (so the rename is atomic) and
    is removed if ``write`` fails; the data is fsynced before the rename unless
    ``fsync=False`` (for files verified on every read, which a crash can only
    leave detectably damaged). The file ends with mode :data:`FILE_MODE` (0644
    under the usual umask 022), set after ``write`` since a writer may recreate it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise XDistillError(_describe_os_error(path, exc)) from exc
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        _set_file_mode(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise XDistillError(_describe_os_error(path, exc)) from exc
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        found = _WRAPPED_OS_ERROR.search(str(exc)) if isinstance(exc, Exception) else None
        if found:
            code = int(found.group(1))
            raise XDistillError(_describe_os_error(path, OSError(code, os.strerror(code)))) from exc
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def unusable_path(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot even be looked up (a name too long, a NUL byte, no permission), or None.

    ``Path.exists()`` raises on these instead of answering False; a missing path is not a problem here.
    """
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(*parts: bytes | memoryview) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Weights: safetensors only, so a weights file never runs code when read.


def read_safetensors(path: str | os.PathLike, what: str, fix: str = "") -> dict[str, Any]:
    """The tensors of the safetensors file ``path`` as a state dict of torch tensors.

    ``what`` names the file for the user ("Teacher 'x': weights"); a missing, foreign
    or damaged file raises :class:`XDistillError` saying so, followed by ``fix``.
    """
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise XDistillError(f"{what} '{path}' does not exist.{' ' + fix if fix else ''}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for foreign or damaged files
        raise XDistillError(f"{what} '{path}' is not a safetensors file ({exc}).{' ' + fix if fix else ''}") from exc


def load_weights(model: Any, state: dict[str, Any], what: str, fits: str, fix: str = "") -> None:
    """``model.load_state_dict(state)``; weights that do not fit raise :class:`XDistillError`
    "``what`` does not fit ``fits`` (first line of torch's message). ``fix``"."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        # torch's message is a header line ("Error(s) in loading state_dict for X:") then one
        # indented line per problem; the problems are what the user needs, on one line.
        lines = [line.strip() for line in str(exc).strip().splitlines()]
        problems = [line for line in lines[1:] if line] or lines[:1]
        detail = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise XDistillError(f"{what} does not fit {fits} ({detail}).{' ' + fix if fix else ''}") from exc
