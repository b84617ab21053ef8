"""The class-mismatch targets: a pool 60 % outside the label set, its clean twin, and the outside mask."""

from __future__ import annotations

import numpy as np

from xdistill.data import load_task
from xdistill.demo.mismatch import KNOWN, OUTSIDE_SHARE, POOL_SIZE, build_mismatch, mismatch_tasks
from xdistill.demo.suite import SUITES
from xdistill.demo.world import DemoWorld
from xdistill.kinds.classification.pool import OUTSIDE_MASK_FILE, read_outside_mask


def test_twins_share_labels_test_and_pool_size_and_differ_in_the_pool():
    mismatched, clean, outside = mismatch_tasks()
    assert mismatched.classes == clean.classes == [str(c) for c in range(KNOWN)]
    for split in ("labeled", "test"):
        np.testing.assert_array_equal(mismatched.splits[split].x, clean.splits[split].x)
        np.testing.assert_array_equal(mismatched.splits[split].y, clean.splits[split].y)
    assert np.bincount(clean.labeled.y).tolist() == [10] * KNOWN
    assert len(mismatched.unlabeled) == len(clean.unlabeled) == POOL_SIZE
    assert outside.dtype == bool and outside.mean() == OUTSIDE_SHARE
    # No pool image is a labeled or test image, and the clean pool holds none of the mismatched one's outsiders.
    flat = {name: task.unlabeled.x.reshape(POOL_SIZE, -1) for name, task in (("m", mismatched), ("c", clean))}
    seen = {row.tobytes() for split in ("labeled", "test") for row in clean.splits[split].x.reshape(-1, 28 * 28)}
    assert not seen & {row.tobytes() for row in flat["m"]} and not seen & {row.tobytes() for row in flat["c"]}
    assert not {row.tobytes() for row in flat["m"][outside]} & {row.tobytes() for row in flat["c"]}


def test_build_writes_both_tasks_and_the_mask_once(tmp_path):
    assert "mismatch" in SUITES
    world = DemoWorld(tmp_path, tmp_path / "zoo.yaml", {}, [], tmp_path / "generic.npz")
    built = build_mismatch(world, log=lambda _: None)
    assert sorted(built) == ["sk-digits-mismatch", "sk-digits-mismatch-clean"]
    mismatched = load_task(str(built["sk-digits-mismatch"][0]))
    clean = load_task(str(built["sk-digits-mismatch-clean"][0]))
    assert read_outside_mask(mismatched).mean() == OUTSIDE_SHARE and read_outside_mask(clean) is None
    assert built["sk-digits-mismatch"][1] == world.zoo_path
    mask_file = built["sk-digits-mismatch"][0] / OUTSIDE_MASK_FILE
    stamp = mask_file.stat().st_mtime_ns
    assert build_mismatch(world, log=lambda _: None) == built and mask_file.stat().st_mtime_ns == stamp
