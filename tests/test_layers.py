"""The house's layers: every import inside ``runner/`` points to the module's own layer or a lower one.

The layers, lowest first (README, "How the code is laid out"). A module may import
from its own layer or a lower one; an import from a higher layer, or a circle of
imports, fails here with the chain that makes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "runner"

LAYERS = {
    # records, update rules, the schema's column types, the one count check, the rates of quadratics:
    # no project imports but these
    "core": ["runner.errors", "runner.trace", "runner.optimizers", "runner.columns", "runner.theory", "objectives"],
    # a config becomes objects and columns; validate reads each factory's keys once
    "config": ["runner.config", "runner.validate"],
    # one run's computation: the shared stopping rules, the loop, scipy's own driver
    "drivers": ["runner.stopping", "runner.loop", "runner.scipy_driver"],
    "storage": ["runner.store", "runner.splice"],
    # the sweep as one dataset, which configs won (best), comparisons across problems (profiles)
    "tables": ["runner.tables", "runner.best", "runner.profiles"],
    # runs that write files: one (run), or many batched (batched: chunk files, and run() for the rest)
    "runs": ["runner.run", "runner.batched"],
    "figures": ["runner.figures", "runner.plot", "runner.report"],
    # the command line: Hydra's (app), what it lacks (cli: --list, --dry-run, completion; discover; hints)
    "edge": [
        "runner.app",
        "runner.__main__",
        "runner",
        "runner.interrupt",
        "runner.progress",
        "runner.cli",
        "runner.discover",
        "runner.hints",
    ],
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    """The rank of the most specific layer entry that ``module`` falls under."""
    best = None
    for entry, rank in RANK.items():
        under = module == entry or module.startswith(entry + ".")
        if under and (best is None or len(entry) > len(best[0])):
            best = (entry, rank)
    return None if best is None else best[1]


def _imports(path: Path) -> set[str]:
    """Project modules that ``path`` imports, at any depth (lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("runner", "objectives")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    known = set(modules) | {"objectives"}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            # "from runner.x import name" names a module when runner.x.name is one
            while imported not in known and "." in imported:
                imported = imported.rpartition(".")[0]
            if imported in known and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


GRAPH = _graph()


def test_every_module_has_a_layer():
    assert [m for m in GRAPH if _layer(m) is None] == []


def upward(graph: dict[str, set[str]], module: str) -> list[str]:
    """The modules ``module`` imports from a higher layer (the package ``runner`` itself is the edge's door)."""
    return [t for t in sorted(graph[module]) if t != "runner" and _layer(t) > _layer(module)]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    assert upward(GRAPH, module) == [], f"{module} (layer {_layer(module)}) imports from higher layers"


def test_the_layer_check_finds_an_upward_import():
    assert upward({"runner.loop": {"runner.store", "runner.trace"}}, "runner.loop") == ["runner.store"]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, as one chain per strongly connected component of more than one module
    (Tarjan's algorithm: each module and import visited once, not every path)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles():
    assert circles(GRAPH) == []


def test_the_circle_check_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "e"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({**GRAPH, "runner.errors": GRAPH["runner.errors"] | {"runner.app"}}) != []
