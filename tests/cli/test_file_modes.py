"""Files a run writes get the mode the user's umask asks for, though they are written atomically."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from xdistill.io import FILE_MODE, atomic_write_text


def written_files(*folders: Path) -> dict[str, int]:
    return {str(p): stat.S_IMODE(p.stat().st_mode) for folder in folders for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_distill_run_honours_the_umask(tiny_task, tiny_zoo, tmp_path, umask, expected):
    home, cache, out = tmp_path / "home", tmp_path / "cache", tmp_path / "run"
    env = {**os.environ, "XDISTILL_HOME": str(home), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    args = ["distill", "--task", str(tiny_task), "--zoo", str(tiny_zoo), "--cache", str(cache), "--method", "weighted",
            "--out", str(out), "--epochs", "1", "progress=false", "batch_size=4"]
    # The umask is set in the child before Python starts, as a shell's `umask` would.
    proc = subprocess.run([sys.executable, "-m", "xdistill", *args], capture_output=True, text=True, env=env,
                          umask=umask, timeout=300)
    assert proc.returncode == 0, proc.stderr
    modes = written_files(home, cache, out) if home.exists() else written_files(cache, out)
    names = {Path(p).name for p in modes}
    assert {"student.safetensors", "metrics.json", "config.yaml", "entry.json"} <= names, sorted(names)
    assert any(name.endswith(".safetensors") and name != "student.safetensors" for name in names), sorted(names)
    wrong = {p: oct(m) for p, m in modes.items() if m != expected}
    assert not wrong, f"expected {oct(expected)} under umask {oct(umask)}: {wrong}"


def test_atomic_write_gives_the_module_file_mode(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE
    # FILE_MODE is the umask's complement in 0666, as for a file made by open(..., "w").
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert FILE_MODE == stat.S_IMODE(plain.stat().st_mode)
