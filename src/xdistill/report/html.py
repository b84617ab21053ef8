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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xdistill.io import atomic_write_text

STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; overflow-wrap: anywhere; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; }
div.table-box { max-width: 100%; overflow-x: auto; margin: 0.6em 0 1.2em; }
table { border-collapse: collapse; font-size: 0.9em; table-layout: auto; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; overflow-wrap: break-word; word-break: normal;
         vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0 1.2em; }
p.note { color: #555; font-size: 0.9em; }
div.flag { border: 2px solid #c0392b; background: #fdecea; padding: 0.6em 1em; margin: 0.8em 0 1.2em; }
div.flag strong { color: #a93226; }
div.flag ul { margin: 0.4em 0 0; padding-left: 1.4em; }
"""

# Significant digits shown for floats in report tables; tests compare cells at this precision.
FLOAT_DIGITS = 4
# Floats at or above this size show no decimals; below SMALL_FLOAT they switch to scientific notation.
LARGE_FLOAT = 10.0 ** FLOAT_DIGITS
SMALL_FLOAT = 1e-3


def float_decimals(value: float) -> int | None:
    """Decimals that show ``value`` to FLOAT_DIGITS significant digits (None: use scientific notation)."""
    if value == 0:
        return 0
    rounded = abs(float(f"{value:.{FLOAT_DIGITS - 1}e}"))  # 0.099996 rounds to 0.1000, not 0.09999...
    if rounded < SMALL_FLOAT:
        return None
    if rounded >= LARGE_FLOAT:
        return 0
    return FLOAT_DIGITS - 1 - math.floor(math.log10(rounded))


def format_float(value: float, decimals: int | None = None) -> str:
    """A float to FLOAT_DIGITS significant digits, or to ``decimals`` decimals when given."""
    if not math.isfinite(value):
        return str(value)
    if decimals is None:
        decimals = float_decimals(value)
        if decimals is None:
            return f"{value:.{FLOAT_DIGITS - 1}e}"
    return f"{value:.{decimals}f}"


def format_cell(value: Any) -> str:
    """How one value reads in a report table: '-' for missing, floats to FLOAT_DIGITS significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def mean_std_cell(mean: float | None, std: float | None) -> str:
    """'mean ± std' as it reads in reports: the std to as many decimals as the mean shows."""
    if mean is None:
        return "-"
    mean, std = float(mean), float(std or 0.0)
    decimals = float_decimals(mean) if math.isfinite(mean) else None
    if decimals is None:
        return f"{format_float(mean)} ± {format_float(std)}"
    return f"{format_float(mean, decimals)} ± {format_float(std, decimals)}"


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# Long names and paths ("linear_probe_accuracy", "/runs/weighted-seed0") may wrap after these characters.
_BREAK_AFTER = re.compile(r"([_/.\-])(?=\w)")


def breakable(text: str) -> str:
    """``text`` escaped for HTML, with a line-break opportunity after each '_', '/', '.' or '-' inside a name."""
    return _BREAK_AFTER.sub(r"\1<wbr>", html.escape(text))


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
        head = "".join(f"<th>{breakable(str(c))}</th>" for c in columns)
        body = []
        for row in rows:
            cells = []
            for value in row:
                text = value if isinstance(value, str) else format_cell(value)
                if _is_number_text(text):
                    cells.append(f'<td class="num">{html.escape(text)}</td>')
                else:
                    cells.append(f"<td>{breakable(text)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        ident = f' id="{html.escape(table_id)}"' if table_id else ""
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        # The box scrolls a table wider than the page on its own, so the page never scrolls sideways.
        self.parts.append(f'<div class="table-box"><table{ident}>{cap}<thead><tr>{head}</tr></thead>'
                          f"<tbody>{''.join(body)}</tbody></table></div>")

    def table_from_dicts(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                         caption: str = "", table_id: str = "") -> None:
        """A table whose rows are dicts; columns default to the keys in first-seen order."""
        if columns is None:
            columns = list(dict.fromkeys(k for row in rows for k in row))
        self.table(columns, [[row.get(c) for c in columns] for row in rows], caption, table_id)

    def key_values(self, values: Mapping[str, Any], caption: str = "", table_id: str = "") -> None:
        """A two-column table of names and values."""
        self.table(["", "value"], [[k, v] for k, v in values.items()], caption, table_id)

    def flag(self, headline: str, points: Sequence[str] = (), flag_id: str = "") -> None:
        """A boxed warning the reader cannot miss: a bold headline, then one bullet per point."""
        ident = f' id="{html.escape(flag_id)}"' if flag_id else ""
        items = "".join(f"<li>{html.escape(p)}</li>" for p in points)
        self.parts.append(f'<div class="flag"{ident} role="alert"><strong>{html.escape(headline)}</strong>'
                          + (f"<ul>{items}</ul>" if items else "") + "</div>")

    def image(self, png: bytes, alt: str) -> None:
        self.parts.append(f'<img src="{png_data_uri(png)}" alt="{html.escape(alt)}">')

    def render(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
                + "\n".join(self.parts) + "\n</body>\n</html>\n")

    def write(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.render())
