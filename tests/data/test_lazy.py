"""Lazy splits: x.npy folders memory-mapped, image folders decoded on demand,
fingerprints streamed, stored beside the split and invalidated by a change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xdistill.data import fingerprint as fingerprint_module
from xdistill.data import lazy, load_task, save_task, task_from_arrays
from xdistill.data.fingerprint import FINGERPRINT_SUFFIX, fingerprint_arrays
from xdistill.data.lazy import ImageFolderArray, evenly_spaced
from xdistill.errors import XDistillError

from ..conftest import make_arrays


def tiny_task(seed: int = 0):
    labeled, unlabeled, test = make_arrays(seed)
    return task_from_arrays("tiny", ["c0", "c1", "c2"], labeled, unlabeled, test)


def write_image_task(folder: Path, task) -> Path:
    for split in ("labeled", "test"):
        for i, (image, label) in enumerate(zip(task.splits[split].x, task.splits[split].y)):
            (folder / split / f"c{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / split / f"c{label}" / f"{i:03d}.png")
    (folder / "unlabeled").mkdir(parents=True)
    for i, image in enumerate(task.unlabeled.x):
        Image.fromarray(image).save(folder / "unlabeled" / f"{i:03d}.png")
    (folder / "task.yaml").write_text("name: tiny\nclasses: [c0, c1, c2]\ninput: image\n"
                                      "splits: {labeled: labeled, unlabeled: unlabeled, test: test}\n")
    return folder


def test_npy_split_folder_is_memory_mapped_and_matches_the_npz_form(tmp_path):
    task = tiny_task()
    save_task(task, tmp_path / "npz")
    save_task(task, tmp_path / "npy", layout="npy")
    in_memory, mapped = load_task(tmp_path / "npz"), load_task(tmp_path / "npy")
    for name in ("labeled", "unlabeled", "test"):
        assert isinstance(mapped.splits[name].x, np.memmap)
        np.testing.assert_array_equal(np.asarray(mapped.splits[name].x), in_memory.splits[name].x)
        # Hashed in chunks, the content hash is the one of the whole array: both forms share cache entries.
        assert mapped.splits[name].fingerprint == in_memory.splits[name].fingerprint
    assert mapped.unlabeled.y is None and not (tmp_path / "npy" / "unlabeled" / "y.npy").exists()
    np.testing.assert_array_equal(mapped.labeled.y, task.labeled.y)


def test_chunked_fingerprint_equals_one_pass(monkeypatch):
    x = np.random.default_rng(0).integers(0, 256, (37, 5, 5), dtype=np.uint8)
    whole = fingerprint_arrays(x, None)
    monkeypatch.setattr(fingerprint_module, "HASH_CHUNK_BYTES", 3 * 25)  # 3 rows a chunk, a partial last one
    assert fingerprint_arrays(x, None) == whole


def test_npy_fingerprint_is_stored_beside_the_split_and_reused(tmp_path, monkeypatch):
    save_task(tiny_task(), tmp_path, layout="npy")
    first = load_task(tmp_path).unlabeled.fingerprint
    stored = json.loads((tmp_path / f"unlabeled{FINGERPRINT_SUFFIX}").read_text())
    assert stored["fingerprint"] == first

    def refuse(*args):
        raise AssertionError("the stored fingerprint should have been used")

    monkeypatch.setattr(fingerprint_module, "fingerprint_arrays", refuse)
    assert load_task(tmp_path).unlabeled.fingerprint == first


def test_npy_fingerprint_changes_with_the_content(tmp_path):
    task = tiny_task()
    save_task(task, tmp_path, layout="npy")
    before = load_task(tmp_path).unlabeled.fingerprint
    x = np.array(task.unlabeled.x)
    x[7, 3, 3] ^= 1
    np.save(tmp_path / "unlabeled" / "x.npy", x)
    os.utime(tmp_path / "unlabeled" / "x.npy", ns=(1, 1))  # a different mtime even on coarse clocks
    assert load_task(tmp_path).unlabeled.fingerprint != before


def test_image_folder_decodes_only_the_requested_images(tmp_path, monkeypatch):
    task = tiny_task()
    loaded = load_task(write_image_task(tmp_path, task))
    pool = loaded.unlabeled.x
    assert isinstance(pool, ImageFolderArray) and pool.shape == (30, 8, 8) and pool.dtype == np.uint8
    decoded = []
    real = lazy.decode_image
    monkeypatch.setattr(lazy, "decode_image", lambda path: decoded.append(path.name) or real(path))
    np.testing.assert_array_equal(pool[np.array([4, 2])], task.unlabeled.x[[4, 2]])
    np.testing.assert_array_equal(pool[5:7], task.unlabeled.x[5:7])
    assert sorted(decoded) == ["002.png", "004.png", "005.png", "006.png"]
    np.testing.assert_array_equal(pool[4], task.unlabeled.x[4])  # kept in the bounded LRU: not decoded again
    assert len(decoded) == 4
    np.testing.assert_array_equal(loaded.labeled.y, np.sort(task.labeled.y))  # class folders, files sorted


def test_decoded_images_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(lazy, "DECODED_CACHE_BYTES", 3 * 64)  # three 8x8 images
    pool = load_task(write_image_task(tmp_path, tiny_task())).unlabeled.x
    pool[np.arange(10)]
    assert len(pool._decoded) == 3


def test_image_folder_fingerprint_is_stored_and_follows_one_file(tmp_path):
    task = tiny_task()
    folder = write_image_task(tmp_path, task)
    first = load_task(folder)
    assert json.loads((folder / f"unlabeled{FINGERPRINT_SUFFIX}").read_text())["fingerprint"] == first.unlabeled.fingerprint
    assert load_task(folder).unlabeled.fingerprint == first.unlabeled.fingerprint
    changed = np.array(task.unlabeled.x[3])
    changed[0, 0] ^= 1
    Image.fromarray(changed).save(folder / "unlabeled" / "003.png")
    os.utime(folder / "unlabeled" / "003.png", ns=(1, 1))
    again = load_task(folder)
    assert again.unlabeled.fingerprint != first.unlabeled.fingerprint
    assert again.labeled.fingerprint == first.labeled.fingerprint


def test_image_of_another_size_is_an_error(tmp_path):
    folder = write_image_task(tmp_path, tiny_task())
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(folder / "unlabeled" / "010.png")
    with pytest.raises(XDistillError, match="mixed sizes"):
        load_task(folder)


def test_save_task_rejects_an_unknown_layout(tmp_path):
    with pytest.raises(XDistillError, match="'layout' of save_task must be one of npz, npy. Got 'zarr'"):
        save_task(tiny_task(), tmp_path, layout="zarr")


def test_evenly_spaced_sample_is_bounded_and_spans_the_range():
    assert evenly_spaced(5, 10).tolist() == [0, 1, 2, 3, 4]
    sample = evenly_spaced(1_000_000, 1000)
    assert len(sample) == 1000 and sample[0] == 0 and sample[-1] == 999_999


def test_lazy_float_images_are_validated_on_a_sample(tmp_path):
    x = np.random.default_rng(0).random((12, 8, 8)).astype(np.float32)
    x[0, 0, 0] = 2.0  # row 0 is always in the sample
    labeled, unlabeled, test = make_arrays(0)
    task = task_from_arrays("tiny", ["c0", "c1", "c2"], labeled, unlabeled, test)
    save_task(task, tmp_path, layout="npy")
    np.save(tmp_path / "unlabeled" / "x.npy", x)
    with pytest.raises(XDistillError, match=r"float images must lie in \[0, 1\]"):
        load_task(tmp_path)
