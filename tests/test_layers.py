"""One-way layers: every module under sdbench/ imports only from its own layer or below, and no import
(deferred imports inside functions included) closes a cycle.

Layers, bottom up (``LAYERS``): the foundations (errors, config, budget, cameras, io, hardware, registry,
results, stats), world; priors, representations (and ``sdbench.testing``, which builds priors for tests);
losses, evaluation; trial; sweep, report (and its HTML), study, claims, export; cli. A new top-level module or package must be
added here, which is the point: its place is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "sdbench"

LAYERS: dict[str, int] = {
    **dict.fromkeys(("", "errors", "config", "budget", "cameras", "io", "hardware", "registry", "results", "stats"), 0),
    "world": 1,
    **dict.fromkeys(("priors", "representations", "testing"), 2),
    **dict.fromkeys(("losses", "evaluation"), 3),
    "trial": 4,
    **dict.fromkeys(("sweep", "report", "report_html", "study", "claims", "export"), 5),
    "cli": 6,
}


def module_name(path: Path) -> str:
    parts = ("sdbench", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    if top not in LAYERS:
        raise AssertionError(f"{module} has no layer: add {top!r} to LAYERS in tests/test_layers.py")
    return LAYERS[top]


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _resolve(name: str) -> str:
    """The sdbench module an import name refers to (the longest prefix that is a module)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULES:
            return ".".join(parts[:n])
    raise AssertionError(f"import of {name}: no such module under sdbench/")


def imports(module: str) -> set[str]:
    """The sdbench modules ``module`` imports, at the top or inside functions (not under TYPE_CHECKING)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from sdbench import registry`` imports the module sdbench.registry
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            arg = node.args[0]
            names = [arg.value] if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else []
        names = [n for n in names if n == "sdbench" or n.startswith("sdbench.")]
        if names and not _type_checking_only(node, parents):
            found |= {_resolve(n) for n in names}
    found.discard(module)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    upward = sorted(dep for dep in GRAPH[module] if layer(dep) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports from a higher layer: {', '.join(upward)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_cycles_and_deferred_imports():
    """The checker itself: a deferred import inside a function is an edge, and a cycle is found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "sdbench.world.scenes" in GRAPH["sdbench.representations.gaussians"]  # imported inside a method
    assert layer("sdbench.cli") > layer("sdbench.trial") > layer("sdbench.losses.sds") > layer("sdbench.world.data")
