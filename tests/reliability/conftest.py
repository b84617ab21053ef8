"""Fixtures of the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_task, write_zoo


@pytest.fixture(scope="module")
def valid_inputs(tmp_path_factory) -> dict[str, Path]:
    """A valid task and zoo that the fuzzing properties copy, then break."""
    root = tmp_path_factory.mktemp("fuzz")
    return {"task": write_task(root / "task"), "zoo": write_zoo(root / "zoo").parent, "root": root}
