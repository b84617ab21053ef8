"""A read-only or full disk: a clear error, and nothing half-written left behind.

Tests run as root in CI, where ``chmod`` does not stop writes. ``read_only``
then refuses writes under the folder from inside Python instead, the way a
read-only mount answers: ``OSError(EROFS)`` from ``os.open`` and ``open`` with
a write mode, ``os.mkdir`` and ``os.replace``. ``full_disk`` lets a number of
files be written, then fails the next with ``ENOSPC``: Python writes raise
``OSError``, safetensors' writer (Rust) writes half the file and raises its
own error, as it does on a real full disk. One test uses a real kernel limit
(RLIMIT_FSIZE) in a subprocess to check the same with no simulation at all.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.numpy
import safetensors.torch

from tests.cli.test_cli import run_cli
from tests.reliability.env import ENV, REPO
from tests.reliability.files import cache_differences, snapshot, student_differences, temp_files, unreadable_files

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Writes:
    """Counts writes under ``root`` and fails them with ``code`` once ``allow`` succeeded."""

    def __init__(self, root: Path, code: int, allow: int = 0) -> None:
        self.root, self.code, self.allow, self.refused = str(root.resolve()), code, allow, 0

    def under_root(self, path) -> bool:
        try:
            return str(Path(os.fspath(path)).resolve()).startswith(self.root)
        except TypeError:  # a file descriptor
            return False

    def check(self, path) -> None:
        if self.under_root(path):
            if self.allow > 0:
                self.allow -= 1
                return
            self.refused += 1
            raise OSError(self.code, os.strerror(self.code), os.fspath(path))


def _patch_open(patch, writes: Writes, modes: str) -> None:
    real_open = io.open

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in modes):
            writes.check(file)
        return real_open(file, mode, *args, **kwargs)

    patch.setattr(io, "open", fake_open)
    patch.setattr(builtins, "open", fake_open)


def refuse_writes(patch, root: Path) -> Writes:
    """Every write under ``root`` fails as on a read-only mount."""
    writes = Writes(root, errno.EROFS)
    real = {name: getattr(os, name) for name in ("open", "mkdir", "replace", "rename")}

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            writes.check(path)
        return real["open"](path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        writes.check(path)
        return real["mkdir"](path, *args, **kwargs)

    def fake_move(name):
        def move(src, dst, *args, **kwargs):
            writes.check(dst)
            return real[name](src, dst, *args, **kwargs)
        return move

    patch.setattr(os, "open", fake_os_open)
    patch.setattr(os, "mkdir", fake_mkdir)
    patch.setattr(os, "replace", fake_move("replace"))
    patch.setattr(os, "rename", fake_move("rename"))
    _patch_open(patch, writes, "wax+")
    return writes


def full_disk(patch, root: Path, allow: int) -> Writes:
    """The disk under ``root`` fills up after ``allow`` more files were written."""
    writes = Writes(root, errno.ENOSPC, allow)
    _patch_open(patch, writes, "wax")  # not 'rb+', which atomic_write opens to fsync what it wrote
    for module in (safetensors.numpy, safetensors.torch):
        real_save, real_bytes = module.save_file, module.save

        def save_file(tensors, filename, metadata=None, _save=real_save, _bytes=real_bytes):
            try:
                writes.check(filename)
            except OSError:
                data = _bytes(tensors, metadata=metadata)
                with io.FileIO(filename, "w") as handle:  # half the file, as a write that ran out of space
                    handle.write(data[: len(data) // 2])
                raise safetensors.SafetensorError(
                    "Error while serializing: I/O error: No space left on device (os error 28)") from None
            return _save(tensors, filename, metadata=metadata)

        patch.setattr(module, "save_file", save_file)
    return writes


def chmod_stops_writes(folder: Path) -> bool:
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        (folder / ".probe").touch()
    except PermissionError:
        return True
    (folder / ".probe").unlink()
    folder.chmod(0o755)
    return False


@contextlib.contextmanager
def read_only(monkeypatch, folder: Path):
    """``folder`` (and everything under it) read-only: by chmod where that works, simulated as root."""
    folder.mkdir(parents=True, exist_ok=True)
    if chmod_stops_writes(folder):
        try:
            for path in folder.rglob("*"):
                path.chmod(0o555 if path.is_dir() else 0o444)
            yield "chmod"
        finally:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
    else:
        with monkeypatch.context() as patch:
            refuse_writes(patch, folder)
            yield "simulated"


def assert_clean(*folders: Path) -> None:
    for folder in folders:
        assert temp_files(folder) == [], temp_files(folder)
        assert unreadable_files(folder) == [], unreadable_files(folder)


def assert_one_error(err: str, *words: str) -> None:
    """One 'error:' message naming the problem, no traceback (progress bars may precede it)."""
    assert err.count("error:") == 1 and "Traceback" not in err, err
    message = err[err.index("error:"):].lower()
    assert any(word.lower() in message for word in words), err


def _cache_args(task, zoo, cache):
    return ["cache", "--task", str(task), "--zoo", str(zoo), "--cache", str(cache), "batch_size=4", "shard_size=8"]


def _distill_args(task, out, epochs=3):
    return ["distill", "--task", str(task), "--method", "supervised", "--out", str(out), "--epochs", str(epochs),
            "batch_size=4", "progress=false"]


# -- the cache -----------------------------------------------------------------------------

def test_read_only_empty_cache_folder(tiny_task, tiny_zoo, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    with read_only(monkeypatch, cache):
        assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache)) == 2
    assert_one_error(capsys.readouterr().err, "read-only", "writable")
    assert snapshot(cache) == {}


def test_read_only_complete_cache_is_used_as_it_is(tiny_task, tiny_zoo, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache)) == 0
    before = snapshot(cache)
    out = tmp_path / "run"
    with read_only(monkeypatch, cache):
        assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache)) == 0, capsys.readouterr().err
        assert "no teacher (all cached)" in capsys.readouterr().out
        assert run_cli("distill", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", str(cache),
                       "--method", "weighted", "--out", str(out), "--epochs", "1", "batch_size=4",
                       "progress=false") == 0, capsys.readouterr().err
    assert (out / "student.safetensors").is_file()
    assert snapshot(cache) == before


def test_read_only_incomplete_cache_gives_clear_error_and_stays_intact(tiny_task, tiny_zoo, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache)) == 0
    next((cache / "entries").rglob("shard-00001.safetensors")).unlink()
    before = snapshot(cache)
    with read_only(monkeypatch, cache):
        assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache)) == 2
    assert_one_error(capsys.readouterr().err, "read-only", "writable")
    assert snapshot(cache) == before


@pytest.mark.parametrize("allow", [0, 3, 9])
def test_disk_full_while_caching(tiny_task, tiny_zoo, tmp_path, monkeypatch, capsys, allow):
    """ENOSPC after ``allow`` completed writes: a clear error, complete shards kept, then a full resume."""
    cache = tmp_path / "cache"
    with monkeypatch.context() as patch:
        writes = full_disk(patch, cache, allow)
        assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache)) == 2
    assert writes.refused == 1
    assert_one_error(capsys.readouterr().err, "No space left")
    assert_clean(cache)
    assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache), "--json", str(tmp_path / "resumed.json")) == 0
    assert run_cli(*_cache_args(tiny_task, tiny_zoo, tmp_path / "reference")) == 0
    assert cache_differences(cache, tmp_path / "reference") == []
    assert '"recomputed_shards": 0' in (tmp_path / "resumed.json").read_text()


# -- the distill output --------------------------------------------------------------------

def test_read_only_output_folder(tiny_task, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    with read_only(monkeypatch, out):
        assert run_cli(*_distill_args(tiny_task, out)) == 2
    assert_one_error(capsys.readouterr().err, "read-only", "writable")
    assert snapshot(out) == {}


def test_output_folder_under_read_only_parent(tiny_task, tmp_path, monkeypatch, capsys):
    parent = tmp_path / "locked"
    with read_only(monkeypatch, parent):
        assert run_cli(*_distill_args(tiny_task, parent / "run")) == 2
    assert_one_error(capsys.readouterr().err, "read-only", "writable")
    assert not (parent / "run").exists()


@pytest.mark.parametrize("allow", [1, 2, 4])
def test_disk_full_while_distilling_then_resume(tiny_task, tmp_path, monkeypatch, capsys, allow):
    """ENOSPC after ``allow`` files: config.yaml is the first, then one checkpoint per epoch,
    then the student. The last good checkpoint survives and ``--resume`` ends as an uninterrupted run."""
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        writes = full_disk(patch, out, allow)
        assert run_cli(*_distill_args(tiny_task, out)) == 2
    assert writes.refused == 1
    assert_one_error(capsys.readouterr().err, "No space left")
    assert_clean(out)
    resume = ["--resume"] if (out / "checkpoint.safetensors").exists() else []
    assert bool(resume) == (allow >= 2)
    assert run_cli(*_distill_args(tiny_task, out), *resume) == 0
    assert run_cli(*_distill_args(tiny_task, tmp_path / "reference")) == 0
    assert student_differences(out, tmp_path / "reference") == []
    assert_clean(out)


# A real kernel limit instead of a simulation: writes past RLIMIT_FSIZE bytes fail with EFBIG, in
# Python and in safetensors' Rust writer alike (SIGXFSZ ignored, so the write returns the error).
LIMITED = """
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from xdistill.cli.main import main
codes = []
for limit, argv in json.loads(sys.argv[1]):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        main(argv)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(json.dumps(codes))
"""


def test_real_file_size_limit(tiny_task, tiny_zoo, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    runs = [[300, _cache_args(tiny_task, tiny_zoo, cache)],  # a shard is ~450 bytes
            [100_000, _distill_args(tiny_task, out)]]  # config.yaml fits, a checkpoint (~170 kB) does not
    proc = subprocess.run([sys.executable, "-c", LIMITED, json.dumps(runs)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [2, 2], proc.stderr[-3000:]
    assert proc.stderr.count("error:") == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.count("File too large") == 2, proc.stderr[-3000:]
    assert_clean(cache, out)
    assert not (out / "checkpoint.safetensors").exists() and (out / "config.yaml").is_file()

    assert run_cli(*_cache_args(tiny_task, tiny_zoo, cache)) == 0
    assert run_cli(*_cache_args(tiny_task, tiny_zoo, tmp_path / "reference")) == 0
    assert cache_differences(cache, tmp_path / "reference") == []
    assert run_cli(*_distill_args(tiny_task, out)) == 0
    assert run_cli(*_distill_args(tiny_task, tmp_path / "reference-run")) == 0
    assert student_differences(out, tmp_path / "reference-run") == []
