"""Integrity: checksums on every shard and checkpoint, fingerprints in the manifest,
and invalidation of exactly the cache entries a changed file feeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tests.cli.test_cli import run_cli
from tests.conftest import make_arrays, write_task, write_zoo
from xdistill import __version__
from xdistill.cache import TeacherCache, cache_task
from xdistill.cache.store import CorruptShard
from xdistill.data import load_task
from xdistill.data.splits import save_split_file
from xdistill.errors import XDistillError
from xdistill.teachers import load_zoo
from xdistill.train.checkpoint import load_checkpoint, save_checkpoint


def _header_length(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


def _small_checkpoint(path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    save_checkpoint(path, {"student": model}, optimizer, {"epoch": 2, "history": [{"epoch": 1}, {"epoch": 2}]})


def _load(path):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    return load_checkpoint(path, {"student": model}, torch.optim.AdamW(model.parameters()))


def test_every_flipped_checkpoint_byte_is_refused(tmp_path):
    """One changed byte anywhere (header, metadata JSON, tensors) is an XDistillError, never a resume."""
    path = tmp_path / "checkpoint.safetensors"
    _small_checkpoint(path)
    original = path.read_bytes()
    assert _load(path)["epoch"] == 2
    rng = np.random.default_rng(0)
    header = _header_length(original)
    data_bytes = rng.choice(np.arange(header, len(original)), 64, replace=False).tolist()
    broken_json = rng.choice(header, 64, replace=False).tolist()
    # In the header, XOR 0x01 mostly keeps valid JSON ('2' -> '3'): every byte. XOR 0xFF mostly breaks it.
    flips = [(p, 0x01) for p in range(header)] + [(p, 0xFF) for p in sorted(broken_json + data_bytes)]
    accepted = []
    for position, mask in flips:
        data = bytearray(original)
        data[position] ^= mask
        path.write_bytes(bytes(data))
        try:
            _load(path)
            accepted.append((position, mask))
        except XDistillError:
            pass
    assert accepted == [], f"flips {accepted[:10]} were not detected ({len(flips)} tried)"


def test_epoch_edited_in_checkpoint_metadata_is_refused(tmp_path):
    """The checkpoint's JSON state is covered by its checksum (it was not before format 2)."""
    path = tmp_path / "checkpoint.safetensors"
    _small_checkpoint(path)
    data = path.read_bytes()
    edited = data.replace(b'\\"epoch\\": 2, \\"history', b'\\"epoch\\": 1, \\"history')
    assert edited != data
    path.write_bytes(edited)
    with pytest.raises(XDistillError, match="failed its checksum"):
        _load(path)


def test_tampered_checkpoint_resume_exits_2(tiny_task, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["distill", "--task", str(tiny_task), "--method", "supervised", "--out", str(out), "--epochs", "2",
            "batch_size=4", "progress=false"]
    assert run_cli(*args) == 0
    path = out / "checkpoint.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # one bit of the last tensor
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert run_cli(*args, "--resume") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "failed its checksum" in err and "Traceback" not in err, err


def test_every_flipped_shard_byte_is_caught(tiny_task, tiny_zoo, tmp_path):
    """A shard with one changed byte is never returned as data, except a byte of its informational
    'xdistill' version string, which changes nothing read back."""
    task = load_task(tiny_task)
    cache = TeacherCache(tmp_path / "cache", batch_size=4, shard_size=8, progress=False)
    teacher = load_zoo(tiny_zoo).teachers()[1]
    cache_task(task, [teacher], cache, splits=["test"])
    key = cache.key(teacher, task.test)
    path = cache.store.shard_path(key, 0)
    original = path.read_bytes()
    good = cache.store.read_shard(key, 0, 0, 8)
    version = original.index(json.dumps(__version__).encode())
    harmless = range(version + 1, version + 1 + len(__version__))
    missed = []
    for position in range(len(original)):
        data = bytearray(original)
        data[position] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            arrays = cache.store.read_shard(key, 0, 0, 8)
        except CorruptShard:
            continue
        if position not in harmless or any(not np.array_equal(arrays[k], good[k]) for k in good):
            missed.append(position)
    assert missed == [], f"{len(missed)} of {len(original)} flips went unnoticed, e.g. at {missed[:5]}"


def _cache(task_dir, zoo, root):
    task = load_task(task_dir)
    teachers = load_zoo(zoo).teachers()
    cache = TeacherCache(root, batch_size=8, shard_size=8, progress=False)
    return task, teachers, cache, cache_task(task, teachers, cache)


def test_manifest_records_version_and_fingerprints(tiny_task, tiny_zoo, tmp_path):
    task, teachers, cache, _ = _cache(tiny_task, tiny_zoo, tmp_path / "cache")
    manifest = json.loads((cache.root / "manifest.json").read_text())
    assert manifest["xdistill"] == __version__
    assert len(manifest["entries"]) == 2 * 3
    expected = {(t.name, s.name): (t.fingerprint(), s.fingerprint) for t in teachers for s in task.splits.values()}
    seen = {}
    for key, entry in manifest["entries"].items():
        seen[(entry["teacher"], entry["split"])] = (entry["teacher_fingerprint"], entry["split_fingerprint"])
        stored = json.loads((cache.root / "entries" / key / "entry.json").read_text())
        assert stored["xdistill"] == __version__ and stored["teacher_fingerprint"] == entry["teacher_fingerprint"]
    assert seen == expected


def test_changed_split_or_teacher_invalidates_exactly_its_entries(tmp_path):
    task_dir, zoo = write_task(tmp_path / "task"), write_zoo(tmp_path / "zoo")
    root = tmp_path / "cache"
    task, _, _, first = _cache(task_dir, zoo, root)
    sizes = {name: len(split) for name, split in task.splits.items()}
    total = sum(sizes.values())
    assert first.queries == {"t0": total, "t1": total}

    # Rewriting a file with the same content changes nothing: entries follow content, not mtimes.
    save_split_file(task_dir / "test.npz", task.test.x, task.test.y, "image", task.classes)
    assert _cache(task_dir, zoo, root)[3].queries == {}

    # One split's file changes: only its 2 entries (one per teacher) are computed again.
    (x, y) = make_arrays(seed=5)[2]
    save_split_file(task_dir / "test.npz", x, y, "image", task.classes)
    _, _, _, summary = _cache(task_dir, zoo, root)
    assert summary.queries == {"t0": sizes["test"], "t1": sizes["test"]}
    new = [k for k in summary.entries if k not in first.entries]
    assert sorted(summary.entries[k]["split"] for k in new) == ["test", "test"]

    # One teacher's file changes: only its 3 entries are computed again.
    write_zoo(tmp_path / "other", n_teachers=2, seed=7)
    (tmp_path / "zoo" / "t1.pt").write_bytes((tmp_path / "other" / "t1.pt").read_bytes())
    task, _, _, summary = _cache(task_dir, zoo, root)
    assert summary.queries == {"t1": total}
    assert sorted(summary.entries[k]["split"] for k in summary.entries if summary.entries[k]["teacher"] == "t1"
                  and k not in first.entries) == ["labeled", "test", "unlabeled"]
    assert summary.reused == {"t0": total}
    manifest = json.loads((root / "manifest.json").read_text())
    assert len(manifest["entries"]) == 6 + 2 + 3  # old entries stay indexed until pruned
