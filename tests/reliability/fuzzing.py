"""Shared pieces of the fuzzing properties (test_fuzz_task.py, test_fuzz_config.py).

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
import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from xdistill.errors import XDistillError

FUZZ = settings(
    max_examples=int(os.environ.get("XDISTILL_FUZZ_EXAMPLES", "60")),
    derandomize=os.environ.get("XDISTILL_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

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


@contextlib.contextmanager
def scratch(inputs: dict[str, Path], *names: str):
    """A fresh folder holding copies of the named folders of ``inputs`` (the valid_inputs fixture)."""
    folder = Path(tempfile.mkdtemp(dir=inputs["root"]))
    try:
        for name in names:
            shutil.copytree(inputs[name], folder / name)
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
