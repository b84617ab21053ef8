"""The perf suite's pieces on tiny inputs (the full suite runs on the demo world)."""

from __future__ import annotations

import numpy as np

from xdistill.data.task import load_task
from xdistill.pipeline import perf
from xdistill.select import METRICS
from xdistill.teachers.base import create_teacher
from xdistill.teachers.zoo import load_zoo


def test_machine_names_cpu_cores_torch_and_threads():
    info = perf.machine()
    assert info["cpu"] and info["logical_cores"] >= 1 and info["usable_cores"] >= 1
    assert info["torch"] and info["torch_threads"] >= 1


def test_extraction_overhead_times_both_sides_on_the_same_batches(tiny_task, tiny_zoo, tmp_path):
    task = load_task(tiny_task)
    teachers = [create_teacher(s) for s in load_zoo(tiny_zoo).specs]
    found = perf.extraction_overhead(task, teachers, tmp_path, repeats=2, batch_size=8)
    assert found["teacher_samples"] == 2 * (12 + 30 + 9)
    assert len(found["bare_forward_runs_s"]) == len(found["cache_task_runs_s"]) == 2
    assert found["ratio"] == found["cache_task_s"] / found["bare_forward_s"] > 0
    assert len(list(tmp_path.glob("extraction-*/entries/*/entry.json"))) == 2 * 2 * 3  # fresh folder per repeat


def test_every_metric_is_timed():
    seconds = perf.metric_times(n=200, d=16, classes=4, source_classes=8)
    assert set(seconds) == set(METRICS.names()) and all(s >= 0 for s in seconds.values())


def test_extraction_memory_runs_in_a_fresh_process():
    found = perf.extraction_memory(2000, threads=1)
    assert found["n"] == 2000 and found["images_bytes"] == 2000 * 28 * 28
    assert found["peak_rss_bytes"] >= found["rss_before_bytes"] > 0


def test_verdicts_compare_each_figure_with_its_target():
    results = {"extraction": {"ratio": 1.05}, "memory": {"growth": 1.5},
               "epochs": {"cached_vs_supervised": 2.5, "cached_vs_same_batches": 1.02, "online_vs_cached": 3.0}}
    verdicts = perf.verdicts(results)
    assert verdicts["extraction_overhead"]["met"] and verdicts["online_vs_cached"]["met"]
    assert not verdicts["cached_vs_supervised"]["met"] and not verdicts["memory_growth"]["met"]
    assert np.isclose(verdicts["cached_vs_same_batches"]["value"], 1.02)
