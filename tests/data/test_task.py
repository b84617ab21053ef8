from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import make_arrays, write_task
from xdistill.data import load_task, save_task, task_from_arrays
from xdistill.errors import XDistillError


def test_roundtrip_keeps_arrays_and_fingerprints(tmp_path):
    labeled, unlabeled, test = make_arrays()
    task = task_from_arrays("t", ["a", "b", "c"], labeled, unlabeled, test)
    save_task(task, tmp_path / "t")
    loaded = load_task(tmp_path / "t")
    assert loaded.input == "image" and loaded.classes == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded.labeled.x, labeled[0])
    assert loaded.unlabeled.y is None
    for name in ("labeled", "unlabeled", "test"):
        assert loaded.splits[name].fingerprint == task.splits[name].fingerprint
    assert loaded.input_shape == (1, 8, 8)


def test_fingerprint_changes_with_one_pixel_and_one_label():
    labeled, unlabeled, test = make_arrays()
    base = task_from_arrays("t", ["a", "b", "c"], labeled, unlabeled, test)
    x = labeled[0].copy()
    x[0, 0, 0] ^= 1
    changed = task_from_arrays("t", ["a", "b", "c"], (x, labeled[1]), unlabeled, test)
    y = labeled[1].copy()
    y[0] = (y[0] + 1) % 3
    relabeled = task_from_arrays("t", ["a", "b", "c"], (labeled[0], y), unlabeled, test)
    assert changed.labeled.fingerprint != base.labeled.fingerprint
    assert relabeled.labeled.fingerprint != base.labeled.fingerprint
    assert changed.unlabeled.fingerprint == base.unlabeled.fingerprint


def test_input_kind_inferred_for_features_and_text():
    feats = task_from_arrays("f", ["a", "b"], (np.zeros((4, 3), np.float32), [0, 1, 0, 1]),
                             np.zeros((2, 3), np.float32), (np.zeros((2, 3), np.float32), [0, 1]))
    assert feats.input == "features" and feats.input_shape == (3,)
    text = task_from_arrays("x", ["a", "b"], (["hi", "yo"], [0, 1]), ["ok"], (["a", "b"], [1, 0]))
    assert text.input == "text" and text.labeled.x.dtype == object


def test_image_folder_split(tmp_path):
    root = tmp_path / "t"
    write_task(root)
    for cls in ("c0", "c1"):
        (root / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / "imgs" / cls / f"{i}.png")
    (root / "flat").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "flat" / "a.png")
    header = yaml.safe_load((root / "task.yaml").read_text())
    header["splits"]["test"] = "imgs"
    header["splits"]["unlabeled"] = "flat"
    (root / "task.yaml").write_text(yaml.safe_dump(header))
    task = load_task(root)
    assert task.test.x.shape == (4, 8, 8)
    assert task.test.y.tolist() == [0, 0, 1, 1]
    assert task.unlabeled.y is None and len(task.unlabeled) == 1


def test_text_jsonl_split(tmp_path):
    root = tmp_path / "txt"
    root.mkdir()
    (root / "l.jsonl").write_text('{"text": "good", "label": "pos"}\n{"text": "bad", "label": 0}\n')
    (root / "u.csv").write_text("text\nfine\nmeh\n")
    (root / "t.jsonl").write_text('{"text": "great", "label": "pos"}\n')
    (root / "task.yaml").write_text(yaml.safe_dump({
        "name": "txt", "classes": ["neg", "pos"], "input": "text",
        "splits": {"labeled": "l.jsonl", "unlabeled": "u.csv", "test": "t.jsonl"}}))
    task = load_task(root)
    assert task.labeled.y.tolist() == [1, 0]
    assert list(task.unlabeled.x) == ["fine", "meh"]


# --- bad input: each gets a message naming the value, the expectation and the fix ---

def _bad(tmp_path, mutate):
    root = write_task(tmp_path / "t")
    mutate(root)
    with pytest.raises(XDistillError) as info:
        load_task(root)
    return str(info.value)


def test_missing_split_file(tmp_path):
    msg = _bad(tmp_path, lambda r: (r / "test.npz").unlink())
    assert "test.npz" in msg and "does not exist" in msg


def test_wrong_npz_key(tmp_path):
    def mutate(root):
        np.savez(root / "labeled.npz", images=np.zeros((3, 8, 8), np.uint8), y=np.zeros(3, int))
    msg = _bad(tmp_path, mutate)
    assert "no array 'x'" in msg and "'images'" in msg


def test_labels_out_of_range(tmp_path):
    def mutate(root):
        np.savez(root / "test.npz", x=np.zeros((3, 8, 8), np.uint8), y=np.array([0, 1, 7]))
    msg = _bad(tmp_path, mutate)
    assert "0..2" in msg and "7" in msg


def test_nan_features_and_out_of_range_floats(tmp_path):
    def mutate(root):
        x = np.zeros((3, 8, 8), np.float32)
        x[0, 0, 0] = np.nan
        np.savez(root / "test.npz", x=x, y=np.array([0, 1, 2]))
    assert "NaN" in _bad(tmp_path, mutate)

    def mutate2(root):
        np.savez(root / "test.npz", x=np.full((3, 8, 8), 3.0, np.float32), y=np.array([0, 1, 2]))
    assert "[0, 1]" in _bad(tmp_path / "b", mutate2)


def test_mixed_image_sizes_across_splits(tmp_path):
    def mutate(root):
        np.savez(root / "test.npz", x=np.zeros((3, 9, 9), np.uint8), y=np.array([0, 1, 2]))
    msg = _bad(tmp_path, mutate)
    assert "same image size" in msg


def test_empty_split(tmp_path):
    def mutate(root):
        np.savez(root / "unlabeled.npz", x=np.zeros((0, 8, 8), np.uint8))
    assert "empty" in _bad(tmp_path, mutate)


def test_unknown_yaml_key_lists_valid_and_reports_all_problems(tmp_path):
    def mutate(root):
        header = yaml.safe_load((root / "task.yaml").read_text())
        header["clases"] = header.pop("classes")
        header["input"] = "video"
        (root / "task.yaml").write_text(yaml.safe_dump(header))
    msg = _bad(tmp_path, mutate)
    assert "Did you mean 'classes'" in msg and "video" in msg and "Missing required key 'classes'" in msg


def test_pickled_npz_is_refused(tmp_path):
    def mutate(root):
        np.savez(root / "test.npz", x=np.array([object()], dtype=object), y=np.array([0]))
    msg = _bad(tmp_path, mutate)
    assert "unpickle" in msg


def test_missing_labels_in_labeled_split(tmp_path):
    def mutate(root):
        np.savez(root / "labeled.npz", x=np.zeros((3, 8, 8), np.uint8))
    assert "needs labels" in _bad(tmp_path, mutate)


def test_a_class_without_labeled_example_is_named(tmp_path):
    labeled, unlabeled, test = make_arrays(n_lab=4)  # labels 0, 1, 2, 0
    y = np.array([0, 2, 2, 0])
    with pytest.raises(XDistillError, match=r"no example of class 'b' \(1 of 3 classes\)"):
        task_from_arrays("t", ["a", "b", "c"], (labeled[0], y), unlabeled, test)
    one_each = task_from_arrays("t", ["a", "b", "c"], (labeled[0][:3], [2, 0, 1]), unlabeled, test)
    assert len(one_each.labeled) == 3


def test_classes_without_labeled_examples_are_reported_with_the_other_problems(tmp_path):
    root = write_task(tmp_path / "t", classes=4, n_lab=8)
    with np.load(root / "labeled.npz") as data:
        x, y = data["x"], data["y"]
    keep = np.isin(y, [0, 2])
    np.savez(root / "labeled.npz", x=x[keep], y=y[keep])
    (root / "test.npz").unlink()
    with pytest.raises(XDistillError) as error:
        load_task(root)
    message = str(error.value)
    assert "(2 problems)" in message and "test.npz" in message
    assert "no example of classes 'c1', 'c3' (2 of 4 classes)" in message
    assert "remove those classes from 'classes'" in message
