"""``xdistill report RUN [RUN ...] --out FILE.html``: finished runs of one task side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from xdistill.cli.output import console, print_table


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    def report_cmd(
        runs: list[Path] = typer.Argument(..., help="Run folders (the --out of 'xdistill distill'), all of one task.",
                                          metavar="RUN", show_default=False),
        out: Path = typer.Option(..., "--out", "-o", help="The HTML file to write, e.g. compare.html.",
                                 metavar="FILE.html", show_default=False),
    ) -> None:
        """Compare finished runs of one task: methods, per-class accuracy, calibration, cost and learning curves."""
        from xdistill.report.compare import compare_runs, method_rows

        path, records = compare_runs(runs, out)
        columns, rows = method_rows(records)
        keep = (["run", "test accuracy", "macro F1", "ECE", "params"] if "test accuracy" in columns
                else [c for c in columns if c not in ("method", "seed", "epochs", "wall time (s)")])
        print_table(f"{records[0].metrics.get('task')}: {len(records)} runs", keep,
                    [[row[columns.index(c)] for c in keep] for row in rows])
        console.print(f"report written to {path}")
