"""The matrix of ``xdistill bench --matrix`` (``matrix.json``, run by :mod:`xdistill.bench.matrix`) -> summary,
Markdown tables and HTML report: method x student per target and on average, one heat-map panel per target,
and each student's cost. Every number is computed here from the runs recorded in the matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xdistill.report import plots
from xdistill.report.bench import _markdown, mean_std
from xdistill.report.html import HtmlPage, mean_std_cell

REPORT_NAME = "report.html"


def summarise_matrix(matrix: dict) -> dict[str, Any]:
    """Per target, method and student the mean ± std over seeds of the last epoch's test accuracy; the average
    over targets (per seed, then mean ± std over seeds); each student's parameters and median CPU latency."""
    cells: dict[str, dict[str, dict[str, list]]] = {}
    for run in matrix["runs"]:
        cells.setdefault(run["task"], {}).setdefault(run["method"], {}).setdefault(run["student"], []).append(run)
    per_target = {t: {m: {s: {"accuracy": mean_std([r["test"]["accuracy"] for r in runs]),
                              "seeds": sorted(r["seed"] for r in runs)}
                          for s, runs in by_student.items()} for m, by_student in by_method.items()}
                  for t, by_method in cells.items()}
    targets = [t for t in matrix["targets"] if t in cells]
    average: dict[str, dict[str, dict]] = {}
    for method in matrix["methods"]:
        for student in matrix["students"]:
            found = [cells[t].get(method, {}).get(student) for t in targets]
            if not targets or any(not f for f in found):
                continue
            seeds = sorted(set.intersection(*[{r["seed"] for r in f} for f in found]))
            per_seed = [np.mean([next(r["test"]["accuracy"] for r in f if r["seed"] == s) for f in found])
                        for s in seeds]
            if seeds:
                average.setdefault(method, {})[student] = {"accuracy": mean_std(per_seed), "seeds": seeds}
    cost = {}
    for student in matrix["students"]:
        mine = [r["cost"] for r in matrix["runs"] if r["student"] == student]
        if mine:
            cost[student] = {"params": int(np.median([c["params"] for c in mine])),
                             "flops": int(np.median([c["flops"] for c in mine])),
                             "cpu_latency_ms_per_sample": float(np.median([c["cpu_latency_ms_per_sample"]
                                                                           for c in mine]))}
    return {"metric": "accuracy", "per_target": per_target, "average": average, "cost": cost}


def matrix_rows(matrix: dict, panel: str) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of one panel (a target, or 'average'): method x student, 'mean ± std'."""
    summary = matrix["summary"]
    table = summary["average"] if panel == "average" else summary["per_target"].get(panel, {})
    students = matrix["students"]
    rows = []
    for method in matrix["methods"]:
        row = [method]
        for student in students:
            cell = table.get(method, {}).get(student)
            if cell:
                row.append(mean_std_cell(*cell["accuracy"]))
            else:
                row.append("n/a" if method in matrix.get("skipped", {}).get(student, {}) else "-")
        rows.append(row)
    return ["method", *students], rows


def cost_rows(matrix: dict) -> tuple[list[str], list[list[Any]]]:
    cost = matrix["summary"]["cost"]
    return (["student", "params", "FLOPs", "CPU ms/sample"],
            [[s, c["params"], c["flops"], c["cpu_latency_ms_per_sample"]] for s, c in cost.items()])


def panels(matrix: dict) -> list[str]:
    targets = list(matrix["targets"])
    return targets + (["average"] if len(targets) > 1 and matrix["summary"]["average"] else [])


def markdown_matrix(matrix: dict) -> str:
    seeds = matrix["seeds"]
    text = [f"### Test accuracy at the last epoch: method x student (mean ± std over {len(seeds)} seed"
            f"{'s' if len(seeds) != 1 else ''}; {matrix['epochs']} epochs; students from scratch)", ""]
    for panel in panels(matrix):
        text += [f"**{panel}**", "", _markdown(*matrix_rows(matrix, panel)), ""]
    text += ["The average is taken over targets for each seed, then mean ± std over seeds. n/a: the method "
             "cannot run on that student (" + "; ".join(f"{s}: {why}" for s, m in matrix.get("skipped", {}).items()
                                                          for why in dict.fromkeys(m.values())) + ")."
             if matrix.get("skipped") else "The average is taken over targets for each seed, then mean ± std "
             "over seeds.", "", "**Student cost** (median over runs; CPU latency per sample in batches of 64)", "",
             _markdown(*cost_rows(matrix)), ""]
    return "\n".join(text)


def _param_count(params: int) -> str:
    return f"{params / 1e3:.0f}k params" if params < 1e6 else f"{params / 1e6:.1f}M params"


def _latency(ms: float) -> str:
    """A per-sample latency with three significant figures, whatever its scale (0.00232 ms, 0.947 ms, 12.3 ms)."""
    return f"{ms:.3g} ms"


def write_matrix_report(out_dir: Path, matrix: dict) -> Path:
    """Write ``out_dir/report.html`` for a matrix (``matrix.json``'s content, with its summary); return its path."""
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
    notes = {s: f"{_param_count(c['params'])}\n{_latency(c['cpu_latency_ms_per_sample'])}" for s, c in cost.items()}
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
