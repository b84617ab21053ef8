"""The generation bench's table and plot from literal rows, and the run report's sample grids."""

from __future__ import annotations

import json

import pytest

from xdistill.bench.generation import markdown_table, quality_plot, write_generation_report
from xdistill.cli.main import main

ROWS = [
    {"model": "teacher", "steps": 8, "network_evaluations": 16, "frechet_distance": 2.5, "precision": 0.8,
     "recall": 0.7, "class_consistency": 0.95, "samples_per_second": 100.0},
    {"model": "guidance", "steps": 8, "network_evaluations": 8, "frechet_distance": 2.6, "precision": 0.79,
     "recall": 0.71, "class_consistency": 0.94, "samples_per_second": 190.0},
]


def test_markdown_table_and_report(tmp_path):
    table = markdown_table(ROWS)
    assert table.splitlines()[2] == "| teacher | 8 | 16 | 2.500 | 0.800 | 0.700 | 0.950 | 100.000 |"
    assert quality_plot(ROWS)[:8] == b"\x89PNG\r\n\x1a\n"
    path = write_generation_report(tmp_path, {"task": "t", "rows": ROWS})
    assert "not FID" in path.read_text() and "<img" in path.read_text()


def test_report_of_generation_runs_shows_their_grids(gen_world, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as code:
        main(["distill", "--task", str(gen_world.task), "--zoo", str(gen_world.zoo), "--method", "progressive",
              "--out", str(run), "steps=1", "teacher_steps=2", "iterations=2", "batch_size=4", "progress=false"])
    assert code.value.code == 0
    with pytest.raises(SystemExit) as code:
        main(["report", str(run), "--out", str(tmp_path / "r.html")])
    assert code.value.code == 0
    page = (tmp_path / "r.html").read_text()
    assert "Sample grids" in page and "Quality against steps" in page and page.count("<img") >= 2
    assert json.loads((run / "metrics.json").read_text())["headline"]["key"] == "frechet_distance"
