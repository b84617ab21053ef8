"""Bench rows that are a method with settings of their own (METHOD+key=value+...)."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import write_task, write_zoo
from xdistill.bench.suite import BenchConfig, BenchTarget, method_spec, run_bench
from xdistill.errors import XDistillError
from xdistill.runtime import Runtime


def test_method_spec_reads_settings_as_yaml_scalars():
    assert method_spec("weighted") == ("weighted", {})
    assert method_spec("weighted+loss=sinkd+kd_temperature=2+online=true") == (
        "weighted", {"loss": "sinkd", "kd_temperature": 2, "online": True})


def test_a_variant_runs_with_its_settings_under_its_own_name(tmp_path):
    write_task(tmp_path / "task", seed=0)
    write_zoo(tmp_path / "zoo", n_teachers=2)
    variant = "weighted+loss=sinkd+kd_temperature=2"
    bench = BenchConfig(seeds=1, methods=["weighted", variant], out=str(tmp_path / "out"), epochs=1,
                        cache_dir=str(tmp_path / "cache"), overrides={"batch_size": 4, "progress": False,
                                                                       "kd_temperature": 3.0})
    results = run_bench([BenchTarget(tmp_path / "task", tmp_path / "zoo" / "zoo.yaml", name="t")], bench,
                        Runtime(log=None), progress=False)
    assert results["methods"] == ["weighted", variant]
    assert sorted(r["method"] for r in results["runs"]) == sorted(["weighted", variant])
    plain = yaml.safe_load((tmp_path / "out" / "t" / "weighted" / "seed-0" / "config.yaml").read_text())
    varied = yaml.safe_load((tmp_path / "out" / "t" / variant / "seed-0" / "config.yaml").read_text())
    assert (plain["loss"], plain["kd_temperature"]) == ("kd", 3.0)  # the bench's override
    assert (varied["method"], varied["loss"], varied["kd_temperature"]) == ("weighted", "sinkd", 2)  # its own win
    assert set(results["summary"]["per_target"]["t"]) == {"weighted", variant}


def test_variant_problems_are_reported_before_any_work(tmp_path):
    with pytest.raises(XDistillError) as info:
        run_bench([BenchTarget(tmp_path / "task", tmp_path / "zoo.yaml")],
                  BenchConfig(methods=["weigthed+loss=sinkd", "weighted+seed=3", "weighted+nokey"],
                              out=str(tmp_path / "out")), Runtime(log=None), progress=False)
    message = str(info.value)
    assert "Did you mean 'weighted'" in message
    assert "sets 'seed'" in message and "must look like key=value" in message
    assert not (tmp_path / "out").exists()
