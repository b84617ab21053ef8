"""The condensation bench's tables and HTML report, from a hand-made results record."""

from __future__ import annotations

from xdistill.report.condense import condense_markdown, condense_table, reuse_table, write_condense_report

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def results(tmp_path) -> dict:
    folder = tmp_path / "ipc1" / "dm"
    folder.mkdir(parents=True)
    (folder / "condensed.png").write_bytes(PNG)
    random = {"accuracy_mean": 0.6, "accuracy": [0.6, 0.6, 0.6]}
    return {
        "task": "t", "recipe": {"student": "convnet3", "width": 128, "steps": 100, "seeds": 3},
        "full_data": {"accuracy_mean": 0.9, "accuracy": [0.9, 0.9, 0.9]},
        "rows": [{"method": "dm", "ipc": 1, "hard": {"accuracy_mean": 0.75, "accuracy": [0.7, 0.75, 0.8]},
                  "soft": {"accuracy_mean": 0.8, "accuracy": [0.8, 0.8, 0.8]}, "share_of_gap": {"condensed_hard": 0.5},
                  "random_real_hard": random, "condense_seconds": 12.4, "folder": str(folder)}],
        "reuse": {"task": "r", "condense": {"method": "herding", "ipc": 20}, "epochs": 30, "seeds": 1,
                  "runs": {"full target, weighted": {"method": "weighted", "accuracy_mean": 0.7, "accuracy": [0.7],
                                                     "seconds": 100.0, "cpu_seconds": 50.0},
                           "condensed set, weighted": {"method": "weighted", "accuracy_mean": 0.68,
                                                       "accuracy": [0.68], "seconds": 15.0, "cpu_seconds": 5.0,
                                                       "condense_seconds": 9.0}},
                  "comparison": {"weighted": {"accuracy_gap_points": 2.0, "time_ratio": 0.15, "cpu_time_ratio": 0.1}},
                  "against_reference": {"weighted": {"accuracy_gap_points": 2.0, "time_ratio": 0.15,
                                                     "cpu_time_ratio": 0.1}},
                  "reference": "weighted", "condensed_settings": {"batch_size": 64}, "pool": {"note": "labeled only"}},
    }


def test_condense_table_leads_and_spread(tmp_path):
    _, rows = condense_table(results(tmp_path))
    # std (ddof 1) of 70, 75, 80 is 5.0; leads over random real 60: +15.0 hard, +20.0 soft
    assert rows == [["1", "dm", "75.0 ± 5.0", "80.0 ± 0.0", "+15.0", "+20.0", "50%", "12"]]


def test_reuse_table_gap_and_time_ratio(tmp_path):
    columns, rows = reuse_table(results(tmp_path)["reuse"])
    assert columns[4:9] == ["CPU s", "gap to full, same method (points)", "time / full, same method (wall; CPU)",
                            "gap to full weighted (points)", "time / full weighted (wall; CPU)"]
    assert rows[0] == ["full target", "weighted", "70.0 ± 0.0", "100", "50", "", "", "", "", ""]
    assert rows[1] == ["condensed set", "weighted", "68.0 ± 0.0", "15", "5", "2.0", "0.15; 0.10", "2.0", "0.15; 0.10", "9"]


def test_report_shows_both_tables_and_every_picture(tmp_path):
    record = results(tmp_path)
    html = write_condense_report(tmp_path, record).read_text().replace("<wbr>", "")
    assert 'id="condense"' in html and 'id="reuse"' in html and "75.0 ± 5.0" in html and "0.15; 0.10" in html
    assert html.count("data:image/png;base64") == 1
    text = condense_markdown(record)
    assert "| 1 | dm | 75.0 ± 5.0 |" in text and "## Reuse (r)" in text and "method=herding, ipc=20" in text and "(batch_size=64)" in text
