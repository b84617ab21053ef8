"""The docs' generated tables agree with the registries they describe."""

from __future__ import annotations

from pathlib import Path

from xdistill.kinds import KINDS, methods_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def built_in_kinds() -> list[str]:
    """Kinds registered by the package itself (tests may register toy kinds of their own)."""
    return [name for name in KINDS.names() if KINDS.get(name).distill.__module__.startswith("xdistill.")]


def test_methods_table_is_generated_from_the_registry():
    text = (DOCS / "methods.md").read_text()
    start, end = "<!-- generated: methods -->\n", "<!-- end generated -->"
    table = text[text.index(start) + len(start):text.index(end)]
    assert table.strip() == methods_markdown(built_in_kinds()).strip(), (
        "docs/methods.md is out of date: paste the output of "
        "python -c 'from xdistill.kinds import methods_markdown; print(methods_markdown([\"classification\"]))'"
    )
