"""The condensation bench on the tiny task: every method x ipc row, resumable, tables and report."""

from __future__ import annotations

import json

from xdistill.bench.condense import CondenseBenchConfig, reuse_check, run_condense_bench

TINY = {"iterations": 2, "real_batch": 4, "embedder_width": 8}


def test_bench_rows_tables_report_and_resume(tiny_task, tiny_zoo, tmp_path):
    bench = CondenseBenchConfig(methods=["random", "dm"], ipcs=[1, 2], seeds=1, condense={**TINY, "cache_dir": str(tmp_path / "c")},
                                recipe={"steps": 2, "width": 8}, out=str(tmp_path / "bench"))
    reuse = reuse_check(tiny_task, tiny_zoo, ["supervised"], {"method": "random", "ipc": 2}, epochs=1, seeds=1,
                        condensed_settings={"batch_size": 3})
    results = run_condense_bench(tiny_task, tiny_zoo, bench, reuse=reuse)
    assert [(r["ipc"], r["method"]) for r in results["rows"]] == [(1, "random"), (1, "dm"), (2, "random"), (2, "dm")]
    assert all(r["soft"] is not None and len(r["hard"]["accuracy"]) == 1 for r in results["rows"])
    runs = results["reuse"]["runs"]
    assert set(runs) == {"full target, supervised", "condensed set, supervised"}
    full, small = runs["full target, supervised"], runs["condensed set, supervised"]
    assert results["reuse"]["comparison"]["supervised"] == results["reuse"]["against_reference"]["supervised"] == {
        "accuracy_gap_points": 100 * (full["accuracy_mean"] - small["accuracy_mean"]),
        "time_ratio": small["seconds"] / full["seconds"], "cpu_time_ratio": small["cpu_seconds"] / full["cpu_seconds"]}
    config = (tmp_path / "bench" / "reuse" / "supervised" / "from-condensed" / "seed0" / "config.yaml").read_text()
    assert "batch_size: 3" in config and "labeled_from:" in config  # the condensed runs' own settings
    out = tmp_path / "bench"
    text = (out / "results.md").read_text()
    assert "| 2 | dm |" in text and "## Reuse" in text
    assert (out / "report.html").read_text().count("data:image/png;base64") == 4  # one picture per condensed set
    before = (out / "ipc2" / "dm" / "eval.json").stat().st_mtime_ns
    again = run_condense_bench(tiny_task, tiny_zoo, bench, reuse=reuse)  # resumes: nothing is recomputed
    assert (out / "ipc2" / "dm" / "eval.json").stat().st_mtime_ns == before
    assert json.dumps(again["rows"]) == json.dumps(results["rows"])


def test_scale_check_runs_condense_in_a_fresh_process_on_a_memory_mapped_pool(tmp_path):
    from xdistill.bench.condense import scale_check

    rows = scale_check(tmp_path, [40], [1], image_shape=(8, 8, 3), settings={**TINY, "real_batch": 2})
    assert rows[0]["pool"] == 40 and rows[0]["seconds"] > 0 and rows[0]["peak_rss_mib"] > 0
    assert (tmp_path / "task-40" / "labeled" / "x.npy").is_file()  # the pool is read memory-mapped
    assert (tmp_path / "condensed-40-ipc1" / "condensed.npz").is_file()
