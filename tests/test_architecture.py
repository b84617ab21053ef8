"""The layers run one way: the library never imports its clients (the CLI, the demo), the stages
do not import the pipeline, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every xdistill module ``path`` imports, at module level or inside a function."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("xdistill")}


MODULES = {module_name(p): p for p in (SRC / "xdistill").rglob("*.py")}
GRAPH = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


@pytest.mark.parametrize("client", ["xdistill.cli", "xdistill.demo"])
def test_library_does_not_import_its_clients(client):
    entry = ("xdistill.__main__",)  # `python -m xdistill` is the CLI
    allowed = (*entry, "xdistill.cli") if client == "xdistill.cli" else (*entry, "xdistill.cli", "xdistill.demo")
    offenders = {name: sorted(m for m in deps if m.startswith(client))
                 for name, deps in GRAPH.items() if not name.startswith(allowed)}
    assert {n: d for n, d in offenders.items() if d} == {}


def test_stages_do_not_import_the_pipeline():
    stages = ("xdistill.data", "xdistill.teachers", "xdistill.cache", "xdistill.select", "xdistill.losses",
              "xdistill.students", "xdistill.train", "xdistill.eval", "xdistill.report")
    offenders = {n: sorted(d for d in deps if d.startswith(("xdistill.pipeline", "xdistill.kinds", "xdistill.bench")))
                 for n, deps in GRAPH.items() if n.startswith(stages)}
    assert {n: d for n, d in offenders.items() if d} == {}


def test_no_import_cycles_between_modules():
    """Tarjan's strongly connected components over module-to-module imports (a package's own
    __init__ re-exporting its modules is the one allowed back edge)."""
    graph = {n: {d for d in deps if not n.startswith(d + ".")} for n, deps in GRAPH.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_condense_sits_between_the_stages_and_the_pipeline():
    """Condensation uses the stages and the classification kind's teacher preparation; the stages never import
    it, and it never imports the verbs, the benches or the clients."""
    stages = ("xdistill.data", "xdistill.teachers", "xdistill.cache", "xdistill.select", "xdistill.losses",
              "xdistill.students", "xdistill.train", "xdistill.eval", "xdistill.report", "xdistill.kinds")
    below = {n: sorted(d for d in deps if d.startswith("xdistill.condense"))
             for n, deps in GRAPH.items() if n.startswith(stages)}
    above = {n: sorted(d for d in deps if d.startswith(("xdistill.pipeline", "xdistill.bench", "xdistill.cli",
                                                         "xdistill.demo")))
             for n, deps in GRAPH.items() if n.startswith("xdistill.condense")}
    assert {n: d for n, d in below.items() if d} == {}
    assert {n: d for n, d in above.items() if d} == {}
