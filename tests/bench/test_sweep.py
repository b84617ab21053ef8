"""The scale sweep's pieces on tiny pools (the sweep itself runs 10k to 1M images)."""

from __future__ import annotations

import numpy as np
import pytest

from xdistill.bench import sweep
from xdistill.data import load_task
from xdistill.data.lazy import ImageFolderArray
from xdistill.teachers.base import create_teacher
from xdistill.teachers.zoo import load_zoo


@pytest.mark.parametrize("layout", ["npy", "png"])
def test_sweep_task_is_written_in_the_lazy_form(tmp_path, layout, monkeypatch):
    monkeypatch.setattr(sweep, "WRITE_CHUNK", 7)  # several chunks and a partial last one
    task = load_task(sweep.write_sweep_task(tmp_path, 30, layout))
    assert len(task.unlabeled) == 30 and task.input_shape == (1, 28, 28)
    assert isinstance(task.unlabeled.x, np.memmap if layout == "npy" else ImageFolderArray)
    assert len(task.labeled) == len(task.test) == sweep.SPLIT_SIZE
    assert np.bincount(task.labeled.y).tolist() == [20] * 10


def test_sweep_zoo_loads_the_synthetic_teacher_with_its_saved_weights(tmp_path):
    teacher = create_teacher(load_zoo(sweep.write_sweep_zoo(tmp_path)).specs[0])
    out = teacher.outputs(np.zeros((3, 28, 28), np.uint8))
    assert out.features.shape == (3, 2 * sweep.SWEEP_TEACHER_WIDTH) and out.logits.shape == (3, 10)
    again = create_teacher(load_zoo(sweep.write_sweep_zoo(tmp_path / "again")).specs[0])
    assert again.fingerprint() == teacher.fingerprint()  # seeded weights: caches are shared across processes


def test_ratios_and_table_compare_the_largest_pool_with_the_smallest_round_by_round():
    def measured(rss, speed):
        return {"cache": {"peak_rss_bytes": rss, "images_per_s": speed, "bytes_per_image": 104.0, "wall_s": 1.0},
                "distill": {"peak_rss_bytes": 2 * rss, "images_per_s": speed / 10, "wall_s": 1.0}}

    def case(layout, n, repeats):
        return sweep.summarise_case(layout, n, 0.0, [measured(rss, speed) for rss, speed in repeats])

    # Two rounds whose load differs: the ratios pair the sizes within a round.
    cases = [case("npy", 10_000, [(100, 1000.0), (100, 500.0)]), case("npy", 1_000_000, [(110, 900.0), (120, 600.0)]),
             case("npy", 100_000, [(1, 1.0), (1, 1.0)]), case("png", 10_000, [(100, 500.0), (100, 500.0)])]
    assert cases[0]["cache"]["images_per_s"] == 750.0  # the median of the repeats
    ratios = sweep.sweep_ratios(cases)
    assert list(ratios) == ["npy 1,000,000 / 10,000"]  # one PNG size: nothing to compare
    r = ratios["npy 1,000,000 / 10,000"]
    assert r["cache images/s"] == pytest.approx({"median": 1.05, "min": 0.9, "max": 1.2}, rel=1e-12)
    assert r["distill peak RSS"] == pytest.approx({"median": 1.15, "min": 1.1, "max": 1.2}, rel=1e-12)
    results = {"machine": {"cpu": "Test CPU", "usable_cores": 2, "logical_cores": 2, "torch": "2.x",
                           "load_average": [1.0, 2.0, 3.0], "load_average_after": [4.0, 5.0, 6.0]},
               "teacher_width": 8, "steps": 100, "epochs": 3, "repeats": 2, "cases": cases, "ratios": ratios}
    text = sweep.sweep_markdown(results)
    assert "load average 1.00, 2.00, 3.00 before, 4.00, 5.00, 6.00 after" in text
    assert "| npy 1,000,000 / 10,000 | 1.150x (1.10-1.20) | 1.050x (0.90-1.20) | 1.150x (1.10-1.20) | 1.050x (0.90-1.20) |" in text
    assert "| x.npy memmap | 1,000,000 |" in text and "| PNG folder | 10,000 |" in text


def test_a_small_sweep_runs_the_real_commands_and_times_the_work_itself(tmp_path):
    results = sweep.run_sweep(cases=(("npy", 40), ("npy", 64)), steps=2, workdir=tmp_path, log=None, repeats=1)
    small, large = results["cases"]
    assert (small["n"], large["n"]) == (40, 64) and len(large["repeats"]) == 1
    for repeat in large["repeats"]:
        cache, distill = repeat["cache"], repeat["distill"]
        # extraction throughput counts the seconds spent producing outputs, a part of the command's own seconds
        assert 0 < cache["compute_s"] <= cache["extraction_s"] <= cache["wall_s"]
        assert cache["images_per_s"] == pytest.approx((64 + 2 * sweep.SPLIT_SIZE) / cache["compute_s"], rel=1e-12)
        assert len(distill["epoch_s"]) == sweep.SWEEP_EPOCHS and distill["steps"] == 2
        steady = float(np.median(distill["epoch_s"][1:]))
        assert distill["images_per_s"] == pytest.approx(2 * 16 * (1 + 4) / steady, rel=1e-12)
    assert set(results["ratios"]["npy 64 / 40"]) == {"cache peak RSS", "cache images/s", "distill peak RSS",
                                                     "distill images/s"}
    assert not list(tmp_path.iterdir())  # every task, cache and run folder is removed
