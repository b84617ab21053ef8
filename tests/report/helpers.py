"""Reading reports back: tables parsed with html.parser, embedded images decoded."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class TableParser(HTMLParser):
    """Every <table>: its id, header cells and body rows, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False
        self.images: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self.tables.append({"id": attrs.get("id", ""), "header": [], "rows": []})
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._in_head:
                self.tables[-1]["header"] = self._row
            else:
                self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_report(text: str) -> TableParser:
    parser = TableParser()
    parser.feed(text)
    parser.close()
    return parser


def tables_by_id(text: str) -> dict[str, dict]:
    return {t["id"]: t for t in parse_report(text).tables if t["id"]}


def external_references(text: str) -> list[str]:
    """Every attribute or CSS reference that would load something from outside the file."""
    found = []
    for tag, attrs in parse_report(text).tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith("data:") and not value.startswith("#"):
                found.append(f"<{tag} {key}={value[:60]}>")
        if tag == "script" and attrs.get("src"):
            found.append(f"<script src={attrs['src']}>")
        if tag == "link":
            found.append(f"<link {attrs}>")
    found += re.findall(r"@import[^;]*;|url\((?!\s*['\"]?data:)[^)]*\)", text)
    return found


def decode_images(text: str) -> list[bytes]:
    """Every embedded image as bytes; each must be a PNG data URI that PIL opens."""
    from PIL import Image

    images = []
    for src in parse_report(text).images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(png)) as image:
            image.verify()
        with Image.open(io.BytesIO(png)) as image:
            assert image.size[0] > 50 and image.size[1] > 50
        images.append(png)
    return images


def cell_numbers(cell: str) -> list[float]:
    """The numbers a table cell shows ('0.8123 ± 0.0100' -> [0.8123, 0.01])."""
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", cell)]
