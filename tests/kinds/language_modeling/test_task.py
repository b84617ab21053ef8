"""Language-modeling task folders: both split formats, and every bad input refused before any work."""

from __future__ import annotations

import json

import pytest

from xdistill.errors import XDistillError
from xdistill.kinds import kind_name, load_task


def write(folder, files, yaml_text=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    (folder / "task.yaml").write_text(yaml_text or "kind: language-modeling\nname: t\nsplits:\n  train: train.txt\n  test: test.jsonl\n")
    return folder


def test_txt_is_one_document_and_jsonl_one_per_line(tmp_path):
    folder = write(tmp_path / "t", {"train.txt": "héllo\nworld\n", "test.jsonl": json.dumps({"text": "a"}) + "\n\n"
                                    + json.dumps({"text": "bc"}) + "\n"})
    assert kind_name(folder) == "language-modeling"
    task = load_task(folder)
    assert task.splits["train"].documents == ["héllo\nworld\n"]
    assert task.splits["test"].documents == ["a", "bc"]
    assert task.splits["train"].n_bytes == len("héllo\nworld\n".encode())
    assert task.splits["train"].fingerprint != task.splits["test"].fingerprint


@pytest.mark.parametrize(("files", "message"), [
    ({"train.txt": b"ok \xff\xfe", "test.jsonl": '{"text": "a"}\n'}, "split 'train': '.*train.txt' is not UTF-8 \\(byte 3"),
    ({"train.txt": "  \n", "test.jsonl": '{"text": "a"}\n'}, "split 'train': .* holds no text"),
    ({"train.txt": "x", "test.jsonl": ""}, "split 'test': .* holds no text"),
    ({"test.jsonl": '{"text": "a"}\n'}, "split 'train': .*train.txt' does not exist"),
    ({"train.txt": "x", "test.jsonl": '{"txt": "a"}\n'}, "line 1 has no string field 'text'"),
    ({"train.txt": "x", "test.jsonl": "not json\n"}, "line 1 is not JSON"),
])
def test_bad_splits_are_clear_errors(tmp_path, files, message):
    with pytest.raises(XDistillError, match=message):
        load_task(write(tmp_path / "t", files))


def test_every_problem_is_reported_at_once(tmp_path):
    folder = write(tmp_path / "t", {"train.txt": b"\xff"}, "kind: language-modeling\nname: t\ncolour: red\n"
                   "splits:\n  train: train.txt\n  test: missing.txt\n  labeled: x.npz\n")
    with pytest.raises(XDistillError) as info:
        load_task(folder)
    text = str(info.value)
    for part in ("Unknown key 'colour'", "unknown split 'labeled'", "is not UTF-8", "missing.txt' does not exist"):
        assert part in text
