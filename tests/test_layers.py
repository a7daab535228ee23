"""The package's folder tree is its architecture: sub-packages are layers, and a module imports only from its own
layer and the ones below it, so there is no upward import and no import circle."""

from __future__ import annotations

import ast

import networkx as nx

from conftest import REPO

LAYERS = ["core", "data", "nets", "method", "variants", "pipeline", "reports", "apps"]  # lowest first
PACKAGE = REPO / "auxcut"


def module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path) -> set[str]:
    """auxcut modules a file imports anywhere in it (inside functions too), resolved to modules where a name is one."""
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("auxcut"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("auxcut")}
    return found


def layer(module: str) -> int:
    """The layer's rank; the root package (AuxcutError) is below every layer, `python -m auxcut` is an app."""
    parts = module.split(".")
    if module == "auxcut":
        return -1
    if module == "auxcut.__main__":
        return LAYERS.index("apps")
    return LAYERS.index(parts[1])


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        graph.add_node(source)
        for target in imports(path):
            graph.add_edge(source, target)
    return graph


def test_every_module_sits_in_a_layer():
    top = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert top == set(LAYERS)
    assert {p.name for p in PACKAGE.glob("*.py")} <= {"__init__.py", "__main__.py"}


def test_no_module_imports_a_layer_above_its_own():
    upward = [(s, t) for s, t in import_graph().edges if layer(t) > layer(s)]
    assert upward == []


def test_no_import_circle():
    graph = import_graph()
    graph.remove_edges_from([(s, t) for s, t in graph.edges if t == s.rpartition(".")[0]])  # a module and its own package
    assert list(nx.simple_cycles(graph)) == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The check can fail: a method module importing a report is caught."""
    graph = import_graph()
    graph.add_edge("auxcut.method.confusion", "auxcut.reports.summary")
    assert [(s, t) for s, t in graph.edges if layer(t) > layer(s)] == [("auxcut.method.confusion", "auxcut.reports.summary")]
