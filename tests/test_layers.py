"""The house has layers and every import points down: read from the installed sources with `ast`.

Every import counts, including those inside functions (a lazy import is still a dependency).
`from package import name` is an edge to the submodule `package.name` when that is a module.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

# Lowest first. A module belongs to the longest prefix that names it; `bptt` itself (its
# __init__) is the engine's facade.
LAYERS = {
    "checkpointing": 0,
    "bptt": 1, "bptt.engine": 1,
    "bptt.nn": 2, "bptt.inspect": 2,
    "bptt.training": 3,
    "tasks": 4,
    "bptt.studies": 5,
    "bptt.cli": 6, "bptt.plots": 6, "bptt.serve": 6,
}
PACKAGES = ("bptt", "checkpointing", "tasks")


def layer_of(module: str) -> int:
    """The layer of `module`: the entry of its longest prefix in LAYERS."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in LAYERS and (k == len(parts) or prefix != "bptt"):
            return LAYERS[prefix]
    raise KeyError(f"module {module!r} is in no layer: add its package to LAYERS")


def source_modules() -> dict[str, Path]:
    """Every module of the installed packages, by dotted name."""
    modules = {}
    for package in PACKAGES:
        root = Path(importlib.util.find_spec(package).submodule_search_locations[0])
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in its source."""
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a module of a higher layer, as 'a (layer) -> b (layer)'."""
    return [f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)})" for a in sorted(graph)
            for b in sorted(graph[a]) if layer_of(b) > layer_of(a)]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None; an explicit stack, no recursion."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


@pytest.fixture(scope="module")
def graph():
    return import_graph(source_modules())


def test_every_module_belongs_to_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_import_points_up_a_layer(graph):
    assert upward_imports(graph) == []


def test_the_import_graph_has_no_circle(graph):
    assert find_cycle(graph) is None


def test_the_graph_sees_the_known_downward_edges(graph):
    # a graph reader that found nothing would pass the two tests above
    assert "bptt.engine.tensor" in graph["bptt.engine.functions"]
    assert "checkpointing.plan" in graph["bptt.engine.chain"]
    assert "tasks.sequence" in graph["tasks.adding"]
    assert "bptt.cli.commands" in graph["bptt.cli.main"]  # a lazy import inside a function


def test_the_checks_catch_a_circle_and_an_upward_import():
    circle = {"tasks.a": {"tasks.b"}, "tasks.b": {"tasks.c"}, "tasks.c": {"tasks.a"}}
    assert find_cycle(circle) == ["tasks.a", "tasks.b", "tasks.c", "tasks.a"]
    assert upward_imports({"bptt.engine.x": {"bptt.nn.y"}, "bptt.nn.y": set()}) == [
        "bptt.engine.x (1) -> bptt.nn.y (2)"]
    with pytest.raises(KeyError, match="no layer"):
        layer_of("bptt.elsewhere")
