"""Condensation bench results (``results.json`` of ``xdistill bench --condense``) -> Markdown and HTML.

Every figure is computed here from the recorded students: per condensed set and label kind the mean ±
sample standard deviation (ddof=1) of test accuracy over seeds, the lead over random real images at the
same images per class, the share of the gap to the full data, and the wall time of condensing; for the
reuse check, each method trained with ``labeled_from=`` a condensed set against the same method on the
full target: the accuracy gap in points and the ratio of the distill calls' wall times. The HTML report
also shows every condensed set's picture (one row per class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xdistill.report.html import HtmlPage

PICTURE = "condensed.png"  # written beside condensed.npz by xdistill condense (xdistill.condense.store)
REPORT_NAME = "report.html"


def pct(summary: dict | None) -> str:
    """Mean ± sample standard deviation (ddof 1) over seeds, in percent."""
    if summary is None:
        return ""
    values = np.asarray(summary.get("accuracy") or [summary["accuracy_mean"]], dtype=np.float64)
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return f"{100 * summary['accuracy_mean']:.1f} ± {100 * spread:.1f}"


def condense_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """The method x ipc x hard/soft table, in percent, with each set's lead over random real images."""
    columns = ["ipc", "method", "hard labels", "soft labels (zoo)", "hard − random real", "soft − random real",
               "share of gap (hard)", "condense s"]
    rows = []
    for row in results["rows"]:
        random = row["random_real_hard"]["accuracy_mean"]
        lead = lambda s: "" if s is None else f"{100 * (s['accuracy_mean'] - random):+.1f}"  # noqa: E731
        share = row["share_of_gap"].get("condensed_hard")
        rows.append([str(row["ipc"]), row["method"], pct(row["hard"]), pct(row["soft"]), lead(row["hard"]),
                     lead(row["soft"]), "" if share is None else f"{100 * share:.0f}%", f"{row['condense_seconds']:.0f}"])
    return columns, rows


def reuse_table(reuse: dict) -> tuple[list[str], list[list[str]]]:
    """Each method on the full target and on the condensed set: accuracy and wall time; for a condensed run, its
    accuracy gap (full − condensed, points) and time ratio (condensed / full distill wall time) against the same
    method on the full target and against the reference method's full-target run."""
    reference = reuse.get("reference", "")
    columns = ["trained on", "method", "test accuracy", "distill s", "CPU s", "gap to full, same method (points)",
               "time / full, same method (wall; CPU)", f"gap to full {reference} (points)",
               f"time / full {reference} (wall; CPU)", "condense s"]

    def pair(comparison: dict | None) -> list[str]:
        if not comparison:
            return ["", ""]
        cpu = comparison.get("cpu_time_ratio")
        return [f"{comparison['accuracy_gap_points']:.1f}",
                f"{comparison['time_ratio']:.2f}" + ("" if cpu is None or cpu != cpu else f"; {cpu:.2f}")]

    rows = []
    for name, entry in reuse["runs"].items():
        condensed = "condense_seconds" in entry
        same = reuse.get("comparison", {}).get(entry["method"]) if condensed else None
        against = reuse.get("against_reference", {}).get(entry["method"]) if condensed else None
        cpu = entry.get("cpu_seconds")
        rows.append([name.split(",")[0], entry["method"], pct(entry), f"{entry['seconds']:.0f}",
                     "" if cpu is None or cpu != cpu else f"{cpu:.0f}", *pair(same),
                     *pair(against), f"{entry['condense_seconds']:.0f}" if condensed else ""])
    return columns, rows


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def summary_line(results: dict) -> str:
    recipe = results["recipe"]
    per_ipc = {r["ipc"]: pct(r["random_real_hard"]) for r in results["rows"]}
    return (f"{results['task']}: {recipe['student']} (width {recipe['width']}), {recipe['steps']} steps, "
            f"{recipe['seeds']} seeds; full data {pct(results['full_data'])}; random real images per ipc: "
            + ", ".join(f"{ipc}: {text}" for ipc, text in per_ipc.items()))


def reuse_line(reuse: dict) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in reuse["condense"].items())
    extra = ", ".join(f"{k}={v}" for k, v in reuse.get("condensed_settings", {}).items())
    pool = reuse.get("pool") or {}
    return (f"{reuse['task']}: condensed once ({settings}; pool: {pool.get('note', 'not recorded')}); each method "
            f"then trained {reuse['epochs']} epochs on the full target and with labeled_from= the condensed set"
            + (f" ({extra})" if extra else "") + f", {reuse['seeds']} seed(s).")


def condense_markdown(results: dict) -> str:
    text = [f"# Condensation bench\n\n{summary_line(results)}\n\n" + markdown_table(*condense_table(results))]
    if results.get("reuse"):
        text.append(f"## Reuse ({results['reuse']['task']})\n\n{reuse_line(results['reuse'])}\n\n"
                    + markdown_table(*reuse_table(results["reuse"])))
    return "\n\n".join(text) + "\n"


def write_condense_report(out: Path, results: dict) -> Path:
    """``out/report.html``: the table, the reuse check and every condensed set's picture."""
    page = HtmlPage(f"Condensation bench: {results['task']}")
    page.paragraph(summary_line(results))
    page.table(*condense_table(results), caption="Test accuracy (%) of fresh students trained on each condensed set "
               "alone", table_id="condense")
    if results.get("reuse"):
        page.heading(f"Reuse: distilling from a condensed set ({results['reuse']['task']})")
        page.paragraph(reuse_line(results["reuse"]))
        page.table(*reuse_table(results["reuse"]), table_id="reuse")
    page.heading("Condensed images (one row per class)")
    for row in results["rows"]:
        picture = Path(row["folder"]) / PICTURE
        if picture.is_file():
            page.heading(f"{row['method']}, {row['ipc']} per class", level=3)
            page.image(picture.read_bytes(), f"{row['method']} condensed images at {row['ipc']} per class")
    return page.write(Path(out) / REPORT_NAME)
