"""The generation bench's cost rows: time and memory of a training step, and their ratios to consistency."""

from __future__ import annotations

import pytest

from xdistill.bench.generation import cost_table, with_ratios
from xdistill.bench.training_cost import measure_in_this_process


def test_a_dmd_step_is_timed_and_its_memory_measured(gen_world):
    cost = measure_in_this_process(str(gen_world.task), str(gen_world.zoo), "dmd",
                                   {"batch_size": 4, "fake_updates": 1}, iterations=2)
    assert cost["method"] == "dmd" and cost["iterations"] == 2
    assert 0 < cost["seconds_per_step"] <= cost["train_seconds"] and cost["train_cpu_seconds"] > 0
    assert cost["peak_memory_mib"] >= 0


def test_ratios_to_consistency_and_the_table():
    costs = with_ratios([{"method": "consistency", "seconds_per_step": 0.5, "train_cpu_seconds": 2.0, "iterations": 8,
                          "peak_memory_mib": 40.0},
                         {"method": "dmd", "seconds_per_step": 2.0, "train_cpu_seconds": 4.0, "iterations": 4,
                          "peak_memory_mib": 100.0}])
    assert costs[0]["time_vs_consistency"] == 1.0 and costs[1]["cpu_seconds_per_step"] == 1.0
    assert costs[1]["time_vs_consistency"] == pytest.approx(4.0, rel=1e-12)  # 1.0 CPU s a step against 0.25
    assert costs[1]["memory_vs_consistency"] == pytest.approx(2.5, rel=1e-12)
    table = cost_table(costs)
    assert "| dmd | 1.000 | 4.000 | 2.000 | 100.000 | 2.500 |" in table
    alone = with_ratios([{"method": "sid", "seconds_per_step": 1.0, "train_cpu_seconds": 1.0, "iterations": 1,
                          "peak_memory_mib": 1.0}])
    assert alone[0]["time_vs_consistency"] is None
