"""The HTML report of ``xdistill bench --matrix``: the method x student tables per target and on average,
one heat-map panel per target, and each student's cost (computed by :mod:`xdistill.bench.matrix`)."""

from __future__ import annotations

from pathlib import Path

from xdistill.report import plots
from xdistill.report.html import HtmlPage

REPORT_NAME = "report.html"


def _millions(params: int) -> str:
    return f"{params / 1e3:.0f}k params" if params < 1e6 else f"{params / 1e6:.1f}M params"


def write_matrix_report(out_dir: Path, matrix: dict) -> Path:
    """Write ``out_dir/report.html`` for a matrix (``matrix.json``'s content, with its summary); return its path."""
    from xdistill.bench.matrix import cost_rows, matrix_rows, panels

    summary = matrix["summary"]
    page = HtmlPage(f"xdistill bench --matrix: {matrix.get('suite', '')}")
    page.heading("Setup")
    page.key_values({"suite": matrix.get("suite"), "targets": ", ".join(matrix["targets"]),
                     "students": ", ".join(matrix["students"]), "methods": ", ".join(matrix["methods"]),
                     "seeds": len(matrix["seeds"]), "epochs": matrix.get("epochs"), "initialisation": matrix.get("init"),
                     "runs": len(matrix["runs"]), "xdistill": matrix.get("xdistill")}, table_id="setup")
    page.paragraph("Every figure is the last epoch's test accuracy; ± is the sample standard deviation over seeds; "
                   "the average is taken over targets per seed, then over seeds. n/a: the method cannot run on that "
                   "student.", note=True)
    for student, methods in (matrix.get("skipped") or {}).items():
        for method, why in methods.items():
            page.paragraph(f"{method} on {student}: n/a ({why}).", note=True)

    page.heading("Accuracy: method x student")
    shown = panels(matrix)
    for panel in shown:
        page.table(*matrix_rows(matrix, panel), caption=f"{panel}: test accuracy (mean ± std over seeds)",
                   table_id=f"matrix-{panel}")
    cost = summary["cost"]
    notes = {s: f"{_millions(c['params'])}\n{c['cpu_latency_ms_per_sample']:.2f} ms" for s, c in cost.items()}
    heat = {}
    for panel in shown:
        table = summary["average"] if panel == "average" else summary["per_target"].get(panel, {})
        heat[panel] = {m: {s: cell["accuracy"][0] for s, cell in row.items()} for m, row in table.items()}
    page.image(plots.accuracy_heatmap(heat, matrix["methods"], matrix["students"], notes),
               "heat-map of test accuracy, one panel per target")

    page.heading("Student cost")
    page.table(*cost_rows(matrix), caption="Parameters, FLOPs and CPU latency per sample (median over the runs)",
               table_id="cost")
    points = [{"label": r["student"], "accuracy": r["test"]["accuracy"], "params": r["cost"]["params"],
               "latency_ms": r["cost"]["cpu_latency_ms_per_sample"]} for r in matrix["runs"]]
    if points:
        page.image(plots.accuracy_vs_cost(points), "test accuracy against parameters and CPU latency, by student")
    return page.write(Path(out_dir) / REPORT_NAME)
