"""docs/condense.md's method table is generated from the registry."""

from __future__ import annotations

from pathlib import Path

from xdistill.condense.registry import condense_methods_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_condense_methods_table_is_generated_from_the_registry():
    text = (DOCS / "condense.md").read_text()
    start, end = "<!-- generated: condense methods -->\n", "<!-- end generated -->"
    table = text[text.index(start) + len(start):text.index(end)]
    assert table.strip() == condense_methods_markdown().strip(), (
        "docs/condense.md is out of date: paste the output of python -c 'from xdistill.condense.registry "
        "import condense_methods_markdown; print(condense_methods_markdown())'"
    )
