"""Fuzzing the task: task.yaml and the .npz splits (see fuzzing.py for the properties)."""

from __future__ import annotations

import copy
import io
import zipfile

import numpy as np
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.reliability.files import snapshot
from tests.reliability.fuzzing import FUZZ, assert_rejected, library, paths, run_cli, scratch, text, values


def assert_valid_task(task) -> None:
    """What later stages rely on in a loaded task."""
    assert task.num_classes >= 2 and len(set(task.classes)) == task.num_classes
    for split in task.splits.values():
        assert len(split) >= 1
        assert split.x.ndim in (3, 4) and min(split.x.shape[1:]) >= 1, split.x.shape
        if split.x.dtype == np.uint8:
            pass
        else:
            assert split.x.dtype.kind == "f" and np.isfinite(split.x).all() and 0 <= split.x.min() <= split.x.max() <= 1
        if split.y is not None:
            assert split.y.dtype == np.int64 and len(split.y) == len(split.x)
            assert ((split.y >= 0) & (split.y < task.num_classes)).all()
        assert split.fingerprint
    assert task.labeled.y is not None and task.test.y is not None
    assert min(task.input_shape) >= 1


# -- task.yaml -----------------------------------------------------------------------------

VALID_TASK = {"name": "tiny", "classes": ["c0", "c1", "c2"], "input": "image",
              "splits": {"labeled": "labeled.npz", "unlabeled": "unlabeled.npz", "test": "test.npz"}}
TASK_KEYS = ["name", "classes", "input", "splits", "description"]


@st.composite
def task_documents(draw) -> bytes:
    form = draw(st.sampled_from(["edit"] * 6 + ["replace", "text", "bytes"]))
    if form == "text":
        return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass")
    if form == "bytes":
        return draw(st.binary(max_size=80))
    if form == "replace":
        return yaml.safe_dump(draw(values), allow_unicode=True).encode()
    doc = copy.deepcopy(VALID_TASK)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "set", "delete", "split", "split", "drop-split"]))
        key = draw(st.one_of(st.sampled_from(TASK_KEYS), text))
        if op == "set":
            doc[key] = draw(st.one_of(
                values,
                st.lists(st.one_of(text, st.integers(0, 3), st.none()), max_size=4),
                st.sampled_from(["image", "features", "text", "IMAGE", "", "tiny", " "]),
            ))
        elif op == "delete":
            doc.pop(key, None)
        elif isinstance(doc.get("splits"), dict):
            name = draw(st.one_of(st.sampled_from(["labeled", "unlabeled", "test"]), text))
            if op == "split":
                doc["splits"][name] = draw(st.one_of(paths, values))
            else:
                doc["splits"].pop(name, None)
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def _task_with(**splits) -> bytes:
    return yaml.safe_dump({**VALID_TASK, "splits": {**VALID_TASK["splits"], **splits}}).encode()


@FUZZ
@given(document=task_documents())
@example(document=_task_with(test="x" * 300 + ".npz"))  # Path.exists() raised ENAMETOOLONG
@example(document=_task_with(test="a\x00b.npz"))
@example(document=_task_with(**{"\n": "test.npz"}))  # a line break inside the one-line message
@example(document=yaml.safe_dump({**VALID_TASK, "classes": [[1], [1]]}).encode())
def test_fuzzed_task_yaml(valid_inputs, document):
    from xdistill.data import load_task

    with scratch(valid_inputs, "task", "zoo") as folder:
        task_dir, cache = folder / "task", folder / "cache"
        (task_dir / "task.yaml").write_bytes(document)
        before = snapshot(task_dir)
        task, error = library(lambda: load_task(task_dir))
        if error is None:
            assert_valid_task(task)
            return
        assert_rejected(*run_cli("cache", "--task", str(task_dir), "--zoo", str(folder / "zoo" / "zoo.yaml"),
                                 "--cache", str(cache)))
        assert not cache.exists() and snapshot(task_dir) == before


# -- npz splits ----------------------------------------------------------------------------

DTYPES = [np.uint8, np.int8, np.int16, np.int64, np.uint16, np.uint64, np.float16, np.float32, np.float64, np.bool_,
          np.complex64, np.dtype("U3"), np.dtype("S3"), np.dtype("datetime64[s]")]
small_shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)


@st.composite
def image_like(draw) -> np.ndarray:
    """Arrays near a valid split: mostly right shapes, sometimes wrong sizes, ranges or NaNs."""
    n = draw(st.integers(0, 12))
    size = draw(st.sampled_from([(8, 8), (8, 8), (8, 8, 1), (8, 8, 3), (7, 8), (8, 8, 2), (0, 8), (8, 0)]))
    if draw(st.booleans()):
        return draw(hnp.arrays(np.uint8, (n, *size)))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    x = draw(hnp.arrays(dtype, (n, *size), elements=st.floats(0, 1, width=16)))
    if x.size and draw(st.booleans()):
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -0.5, 1.5, 255.0]))
    return x


@st.composite
def labels_for(draw, n: int) -> np.ndarray:
    if draw(st.integers(0, 3)):
        return np.asarray(draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)), dtype=np.int64)
    return draw(hnp.arrays(draw(st.sampled_from(DTYPES)), st.one_of(st.just((n,)), small_shapes)))


@st.composite
def npz_files(draw) -> bytes:
    form = draw(st.sampled_from(["near"] * 5 + ["random"] * 2 + ["bytes", "zip"]))
    if form == "bytes":
        return draw(st.binary(max_size=120))
    if form == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in draw(st.lists(st.sampled_from(["x", "y", "x.npy", "y.npy", "z.npy"]), max_size=3, unique=True)):
                archive.writestr(name, draw(st.binary(max_size=60)))
        return buffer.getvalue()
    if form == "near":
        x = draw(image_like())
    else:
        x = draw(hnp.arrays(draw(st.sampled_from(DTYPES)), small_shapes))
    arrays = {draw(st.sampled_from(["x", "x", "x", "images"])): x}
    n = len(x) if x.ndim else 1
    if draw(st.integers(0, 3)):
        arrays["y"] = draw(labels_for(n))
    if not draw(st.integers(0, 5)):
        arrays["extra"] = np.zeros(2)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@FUZZ
@given(split=st.sampled_from(["labeled", "unlabeled", "test"]), content=st.none() | npz_files())
@example(split="labeled", content=_npz(x=np.uint8(3), y=np.int64(0)))  # 0-d x: len() raised TypeError
@example(split="test", content=_zip(x=b"not an array"))  # np.load hands back raw bytes
@example(split="unlabeled", content=_npz(x=np.zeros((5, 0, 8), np.uint8)))  # images of 0 pixels
@example(split="test", content=_npz(x=np.full((3, 8, 8), np.nan, np.float32), y=np.arange(3)))
def test_fuzzed_npz_split(valid_inputs, split, content):
    from xdistill.data import load_task

    if content is None:  # a truncated copy of the real file
        valid = (valid_inputs["task"] / f"{split}.npz").read_bytes()
        content = valid[: len(valid) // 2]
    with scratch(valid_inputs, "task") as folder:
        task_dir, out = folder / "task", folder / "out"
        (task_dir / f"{split}.npz").write_bytes(content)
        before = snapshot(task_dir)
        task, error = library(lambda: load_task(task_dir))
        if error is None:
            assert_valid_task(task)
            return
        assert_rejected(*run_cli("distill", "--task", str(task_dir), "--method", "supervised", "--out", str(out)))
        assert not out.exists() and snapshot(task_dir) == before
