"""Input fuzzing: malformed task files, splits, zoos and config overrides.

Each property starts from a valid input, breaks it at random (or replaces it
outright) and requires that the library raises ``XDistillError`` (never another
exception), that the CLI exits with status 2 and one ``error:`` message without
a traceback, and that the cache and output folders gain no file. An input the
library accepts must satisfy the invariants later stages rely on.

Examples are derandomized for a stable CI; set XDISTILL_FUZZ_RANDOM=1 (and
XDISTILL_FUZZ_EXAMPLES=1000) to explore further.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import write_task, write_zoo
from tests.reliability.files import snapshot
from xdistill.errors import XDistillError

FUZZ = settings(
    max_examples=int(os.environ.get("XDISTILL_FUZZ_EXAMPLES", "60")),
    derandomize=os.environ.get("XDISTILL_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

# -- shared pieces -------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), text)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(text, st.integers(-3, 3)), inner, max_size=4)),
    max_leaves=8,
)
paths = st.one_of(
    st.sampled_from(["labeled.npz", "unlabeled.npz", "test.npz", "missing.npz", "task.yaml", "", ".", "..", "/",
                     "sub/x.npz", "a\x00b.npz", "x" * 300 + ".npz", "test.jsonl", "test.csv", "t0.pt", "t1.pt",
                     "zoo.yaml", "../zoo/t0.pt", "/dev/null"]),
    text,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    return {"task": write_task(root / "task"), "zoo": write_zoo(root / "zoo").parent, "root": root}


@contextlib.contextmanager
def scratch(world, *names: str):
    """A fresh folder holding copies of the named world folders."""
    folder = Path(tempfile.mkdtemp(dir=world["root"]))
    try:
        for name in names:
            shutil.copytree(world[name], folder / name)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_cli(*args: str) -> tuple[int, str]:
    from xdistill.cli.main import main

    err = io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            torch.set_num_threads(threads)  # a fuzzed 'threads=' must not leak into later tests
    return code, err.getvalue()


def assert_rejected(code: int, err: str) -> None:
    """Exit status 2 and one 'error:' message: one line, or a header line and '  - ' problem lines."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.rstrip("\n").split("\n")
    assert lines[0].startswith("error: ") and err.count("error: ") == 1, err
    assert all(line.startswith("  - ") for line in lines[1:]), err


def library(call) -> tuple[object | None, XDistillError | None]:
    """``call()``'s result, or the XDistillError it raised; any other exception fails the test."""
    try:
        return call(), None
    except XDistillError as exc:
        assert str(exc).strip(), "an XDistillError without a message"
        return None, exc


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


@FUZZ
@given(document=task_documents())
def test_fuzzed_task_yaml(world, document):
    from xdistill.data import load_task

    with scratch(world, "task", "zoo") as folder:
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
def npz_files(draw, valid: bytes) -> bytes:
    form = draw(st.sampled_from(["near"] * 5 + ["random"] * 2 + ["bytes", "truncated", "zip"]))
    if form == "bytes":
        return draw(st.binary(max_size=120))
    if form == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))]
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


@FUZZ
@given(data=st.data())
def test_fuzzed_npz_split(world, data):
    from xdistill.data import load_task

    split = data.draw(st.sampled_from(["labeled", "unlabeled", "test"]))
    valid = (world["task"] / f"{split}.npz").read_bytes()
    content = data.draw(npz_files(valid))
    with scratch(world, "task") as folder:
        task_dir, out = folder / "task", folder / "out"
        (task_dir / f"{split}.npz").write_bytes(content)
        before = snapshot(task_dir)
        task, error = library(lambda: load_task(task_dir))
        if error is None:
            assert_valid_task(task)
            return
        assert_rejected(*run_cli("distill", "--task", str(task_dir), "--method", "supervised", "--out", str(out)))
        assert not out.exists() and snapshot(task_dir) == before


# -- zoo YAML ------------------------------------------------------------------------------

ENTRY_KEYS = ["name", "kind", "labels", "input", "domain", "architecture", "modality", "path", "factory", "weights",
              "kwargs", "target", "trust"]
input_specs = st.one_of(
    values,
    st.fixed_dictionaries({}, optional={
        "size": st.one_of(st.lists(st.one_of(st.integers(-2, 9), st.floats()), max_size=3), values),
        "channels": st.one_of(st.integers(-1, 4), values),
        "mean": st.one_of(st.lists(st.floats(), max_size=4), values),
        "std": st.one_of(st.lists(st.floats(), max_size=4), values),
        text: values,
    }),
)


@st.composite
def zoo_documents(draw, valid: dict) -> bytes:
    form = draw(st.sampled_from(["edit"] * 6 + ["replace", "text"]))
    if form == "text":
        return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass")
    if form == "replace":
        return yaml.safe_dump(draw(values), allow_unicode=True).encode()
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["entry"] * 6 + ["drop-key", "replace-entry", "duplicate", "top"]))
        entries = doc.get("teachers")
        if op == "top" or not isinstance(entries, list) or not entries:
            key = draw(st.one_of(st.just("teachers"), text))
            if draw(st.booleans()):
                doc[key] = draw(values)
            else:
                doc.pop(key, None)
            continue
        i = draw(st.integers(0, len(entries) - 1))
        if op == "replace-entry":
            entries[i] = draw(values)
        elif op == "duplicate":
            entries.append(copy.deepcopy(entries[i]))
        elif not isinstance(entries[i], dict):
            continue
        elif op == "drop-key":
            entries[i].pop(draw(st.sampled_from(ENTRY_KEYS)), None)
        else:
            key = draw(st.one_of(st.sampled_from(ENTRY_KEYS), text))
            entries[i][key] = draw({
                "kind": st.one_of(st.sampled_from(["torchscript", "module", "onnx", "callable", "hf", "timm",
                                                   "torchscrpt", ""]), values),
                "input": input_specs,
                "path": st.one_of(paths, values),
                "labels": st.one_of(st.lists(st.one_of(text, st.integers(0, 3)), max_size=4), values),
                "modality": st.one_of(st.sampled_from(["image", "features", "text", "audio"]), values),
            }.get(key, values))
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def assert_valid_zoo(zoo) -> None:
    from xdistill.teachers import create_teacher

    assert zoo.specs and len(set(zoo.names)) == len(zoo.names)
    for spec in zoo.specs:
        assert isinstance(spec.name, str) and spec.name.strip()
        spec_in = spec.input
        assert spec_in.size is None or (len(spec_in.size) == 2 and all(isinstance(v, int) and v >= 1 for v in spec_in.size))
        assert spec_in.channels in (None, 1, 3)
        assert all(math.isfinite(v) for v in spec_in.mean), spec_in
        assert all(math.isfinite(v) and v > 0 for v in spec_in.std), spec_in
        assert spec.labels is None or (spec.labels and len(set(spec.labels)) == len(spec.labels))
        create_teacher(spec)


@FUZZ
@given(data=st.data())
def test_fuzzed_zoo(world, data):
    from xdistill.teachers import load_zoo

    valid = yaml.safe_load((world["zoo"] / "zoo.yaml").read_text())
    document = data.draw(zoo_documents(valid))
    with scratch(world, "zoo") as folder:
        zoo_dir, cache = folder / "zoo", folder / "cache"
        (zoo_dir / "zoo.yaml").write_bytes(document)
        before = snapshot(zoo_dir)
        zoo, error = library(lambda: load_zoo(zoo_dir / "zoo.yaml"))
        if error is None:
            assert_valid_zoo(zoo)
            return
        assert_rejected(*run_cli("cache", "--task", str(world["task"]), "--zoo", str(zoo_dir / "zoo.yaml"),
                                 "--cache", str(cache)))
        assert not cache.exists() and snapshot(zoo_dir) == before


# -- key=value overrides -------------------------------------------------------------------
# An item starting with '-' is parsed as an option: typer answers with its own usage message
# (exit status 2, no traceback; see test_unknown_option_is_a_usage_error).

# Paths and --resume are left out: they point the run at other files, which the other properties cover.
OVERRIDE_KEYS = ["method", "seed", "epochs", "batch_size", "unlabeled_ratio", "lr", "weight_decay", "loss",
                 "temperature", "kd_weight", "reliability", "label_weight", "feature_weight", "feature_loss",
                 "fixmatch_threshold", "fixmatch_weight", "augment_seed", "views", "online", "metric", "prepare",
                 "prepare_dim", "weight_temperature", "top_k", "device", "threads", "deterministic", "progress",
                 "teachers", "student", "student.name", "student.knobs", "student.width", "train.epochs", "epoch"]
raw_values = st.one_of(
    st.sampled_from(["", "1", "0", "-1", "3", "1e-3", "1e309", "-1e309", "nan", ".nan", ".inf", "-.inf", "true", "no",
                     "null", "~", "[1, 2]", "[]", "{a: 1}", "{}", "0x10", "1_000", "2**70", "99999999999999999999999",
                     "cnn", "mlp", "cpu", "cuda", "cuda:0", "mps", "weighted", "supervised", "kd", "logme", "pca",
                     "&a [*a]", "!!python/object/apply:os.system ['true']", "!!binary aGk=", "'quoted'", ": :", "[",
                     "{", "\t", "é", "2020-01-01"]),
    st.integers(-2**70, 2**70).map(str),
    st.floats().map(repr),
    text,
)
numbers = st.one_of(
    st.integers(-3, 3), st.sampled_from([2**31, 2**63, 2**64, -2**63, 10**30]), st.floats(),
    st.sampled_from([".inf", "-.inf", ".nan", "1e309", "-0.0", "5e-324"]),
).map(str)
numeric_override = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(OVERRIDE_KEYS), numbers)
overrides = st.lists(
    st.one_of(
        numeric_override, numeric_override,
        st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(OVERRIDE_KEYS), text), raw_values),
        text,  # no '=' at all, most of the time
    ),
    min_size=1, max_size=3,
).filter(lambda items: not any(item.startswith("-") for item in items))  # those are options, not overrides


def assert_valid_distill_config(cfg) -> None:
    """Every numeric field finite and inside the range its comment documents."""
    for key in ("lr", "temperature", "weight_temperature"):
        assert math.isfinite(getattr(cfg, key)) and getattr(cfg, key) > 0, (key, getattr(cfg, key))
    for key in ("weight_decay", "kd_weight", "label_weight", "feature_weight", "fixmatch_weight"):
        assert math.isfinite(getattr(cfg, key)) and getattr(cfg, key) >= 0, (key, getattr(cfg, key))
    assert 0 <= cfg.fixmatch_threshold <= 1
    for key in ("epochs", "batch_size", "unlabeled_ratio", "prepare_dim"):
        assert getattr(cfg, key) >= 1, key
    for key in ("seed", "augment_seed"):
        assert 0 <= getattr(cfg, key) < 2**63, key
    assert cfg.views >= 0 and cfg.top_k >= 0 and 0 <= cfg.threads <= 1024
    torch.device(cfg.device)  # a device torch understands


@FUZZ
@given(items=overrides)
def test_fuzzed_overrides(world, items):
    from xdistill.cache import CacheConfig
    from xdistill.config import resolve
    from xdistill.pipeline.distill import config_problems
    from xdistill.train.config import DistillConfig

    cfg, error = library(lambda: resolve(DistillConfig, None, items, base={"task": "t", "out": "o", "method": "supervised"}))
    if cfg is not None and not config_problems(cfg):
        assert_valid_distill_config(cfg)
    library(lambda: resolve(CacheConfig, None, items))
    with scratch(world, "task") as folder:
        out = folder / "out"
        out.mkdir()
        # Holding a run's checkpoint, 'out' turns away a valid config too: nothing long ever starts.
        (out / "checkpoint.safetensors").write_bytes(b"placeholder")
        before = snapshot(out)
        assert_rejected(*run_cli("distill", "--task", str(folder / "task"), "--method", "supervised", "--out", str(out),
                                 "progress=false", *items))
        assert snapshot(out) == before


@FUZZ
@given(item=numeric_override)
def test_fuzzed_numeric_override_is_refused_or_in_range(item):
    """One well-formed override at a time, so that a bad value is not hidden behind another problem."""
    from xdistill.config import resolve
    from xdistill.pipeline.distill import config_problems
    from xdistill.train.config import DistillConfig

    cfg, _ = library(lambda: resolve(DistillConfig, None, [item], base={"task": "t", "out": "o", "method": "supervised"}))
    if cfg is not None and not config_problems(cfg):
        assert_valid_distill_config(cfg)


def test_unknown_option_is_a_usage_error(world, tmp_path):
    code, err = run_cli("distill", "--task", str(world["task"]), "--out", str(tmp_path / "o"), "-=1")
    assert code == 2 and "Traceback" not in err and "No such option" in err
    assert not (tmp_path / "o").exists()
