"""A self-contained HTML page: inline CSS, PNG figures embedded as base64 data
URIs, no external resources and no JavaScript, so a report opens offline and
can be mailed or archived as one file.

    page = HtmlPage("Bench")
    page.heading("Accuracy")
    page.table(["method", "accuracy"], [["weighted", 0.91]], table_id="accuracy")
    page.image(png_bytes, "accuracy per target")
    page.write(out_dir / "report.html")
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xdistill.io import atomic_write_text

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.2em; }
p.note { color: #555; font-size: 0.9em; }
"""

# Digits shown for floats in report tables; tests compare cells at this precision.
FLOAT_DIGITS = 4


def format_cell(value: Any) -> str:
    """How one value reads in a report table: '-' for missing, floats to FLOAT_DIGITS decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{FLOAT_DIGITS}f}"
    return str(value)


def mean_std_cell(mean: float | None, std: float | None) -> str:
    """'mean ± std' as it reads in reports."""
    if mean is None:
        return "-"
    return f"{format_cell(float(mean))} ± {format_cell(float(std or 0.0))}"


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _is_number_text(text: str) -> bool:
    try:
        float(text.split(" ± ")[0])
    except ValueError:
        return False
    return True


class HtmlPage:
    """An HTML document built section by section, then written in one atomic step."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, note: bool = False) -> None:
        opening = '<p class="note">' if note else "<p>"
        self.parts.append(f"{opening}{html.escape(text)}</p>")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "",
              table_id: str = "") -> None:
        """A table; each cell is formatted by :func:`format_cell` unless it is already a string."""
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = []
        for row in rows:
            cells = []
            for value in row:
                text = value if isinstance(value, str) else format_cell(value)
                cls = ' class="num"' if _is_number_text(text) else ""
                cells.append(f"<td{cls}>{html.escape(text)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        ident = f' id="{html.escape(table_id)}"' if table_id else ""
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def table_from_dicts(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                         caption: str = "", table_id: str = "") -> None:
        """A table whose rows are dicts; columns default to the keys in first-seen order."""
        if columns is None:
            columns = list(dict.fromkeys(k for row in rows for k in row))
        self.table(columns, [[row.get(c) for c in columns] for row in rows], caption, table_id)

    def key_values(self, values: Mapping[str, Any], caption: str = "", table_id: str = "") -> None:
        """A two-column table of names and values."""
        self.table(["", "value"], [[k, v] for k, v in values.items()], caption, table_id)

    def image(self, png: bytes, alt: str) -> None:
        self.parts.append(f'<img src="{png_data_uri(png)}" alt="{html.escape(alt)}">')

    def render(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
                + "\n".join(self.parts) + "\n</body>\n</html>\n")

    def write(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.render())
