"""Checks on what a run leaves on disk: every file parses, nothing half-written,
and two cache folders or two students hold the same bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

LOCK_NAMES = (".lock", ".manifest.lock")


def is_temp(path: Path) -> bool:
    """A temporary file left by a process killed between creating and renaming it: never read.

    ``.NAME.XXXX.tmp`` comes from ``xdistill.io.atomic_write``; ``.tmpXXXXXX`` from safetensors'
    own ``save_file``, which writes a temporary file and renames it onto the name it was given.
    """
    return path.name.startswith(".") and (path.name.endswith(".tmp") or path.name.startswith(".tmp"))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` -> sha256 of its bytes (empty when the folder is absent)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def unreadable_files(folder: Path) -> list[str]:
    """Files under ``folder`` (temp and lock files aside) that fail to parse, each with the reason."""
    from safetensors import safe_open

    from xdistill.cache.store import tensor_checksum

    bad = []
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        if not path.is_file() or is_temp(path) or path.name in LOCK_NAMES:
            continue
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="numpy") as handle:
                    meta = handle.metadata() or {}
                    arrays = {name: handle.get_tensor(name) for name in handle.keys()}
                if path.name.startswith("shard-") and tensor_checksum(arrays) != meta.get("sha256"):
                    raise ValueError("checksum mismatch")
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix in (".yaml", ".yml"):
                yaml.safe_load(path.read_text())
            elif path.stat().st_size == 0:
                raise ValueError("empty file")
        except Exception as exc:  # any failure to parse is what this check reports
            bad.append(f"{path.relative_to(folder)}: {type(exc).__name__}: {exc}")
    return bad


def temp_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and is_temp(p)) if folder.exists() else []


def _shard(path: Path) -> tuple[dict, dict]:
    """A shard's metadata and tensors (name -> dtype, shape, bytes). Not its file bytes: safetensors
    writes the metadata map in an order that may differ between processes."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        return handle.metadata() or {}, {n: (t.dtype.str, t.shape, t.tobytes()) for n, t in tensors.items()}


def _without_time(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "created"}


def cache_differences(cache: Path, reference: Path) -> list[str]:
    """How ``cache`` differs from ``reference``: entry set, shard bytes, entry records, manifest index."""
    problems = []

    def entries(root: Path) -> dict[str, Path]:
        return {p.parent.name: p.parent for p in (root / "entries").glob("*/entry.json")}

    got, want = entries(cache), entries(reference)
    if set(got) != set(want):
        problems.append(f"complete entries differ: missing {sorted(set(want) - set(got))}, extra {sorted(set(got) - set(want))}")
    for key in set(got) & set(want):
        shards = {p.name: p for p in got[key].glob("shard-*.safetensors")}
        ref_shards = {p.name: p for p in want[key].glob("shard-*.safetensors")}
        if set(shards) != set(ref_shards):
            problems.append(f"entry {key}: shard files {sorted(shards)} != {sorted(ref_shards)}")
        for name in set(shards) & set(ref_shards):
            if _shard(shards[name]) != _shard(ref_shards[name]):
                problems.append(f"entry {key}: {name} differs from the reference")
        a = json.loads((got[key] / "entry.json").read_text())
        b = json.loads((want[key] / "entry.json").read_text())
        if _without_time(a) != _without_time(b):
            problems.append(f"entry {key}: entry.json differs")
    manifest = json.loads((cache / "manifest.json").read_text()) if (cache / "manifest.json").is_file() else {}
    ref_manifest = json.loads((reference / "manifest.json").read_text())
    index = {k: _without_time(v) for k, v in manifest.get("entries", {}).items()}
    ref_index = {k: _without_time(v) for k, v in ref_manifest["entries"].items()}
    if index != ref_index:
        problems.append(f"manifest index differs: missing {sorted(set(ref_index) - set(index))}, "
                        f"extra {sorted(set(index) - set(ref_index))}")
    return problems


def student_differences(out: Path, reference: Path) -> list[str]:
    """Tensors of ``out/student.safetensors`` that are not bitwise equal to the reference's."""
    from safetensors.numpy import load_file

    path = out / "student.safetensors"
    if not path.is_file():
        return ["no student.safetensors"]
    got, want = load_file(str(path)), load_file(str(reference / "student.safetensors"))
    if set(got) != set(want):
        return [f"tensor names differ: {sorted(set(got) ^ set(want))}"]
    return [f"{name} differs" for name in sorted(want)
            if got[name].dtype != want[name].dtype or got[name].shape != want[name].shape
            or got[name].tobytes() != want[name].tobytes()]
