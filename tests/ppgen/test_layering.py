"""The import graph, read statically: no cycles between modules, and the layers of DESIGN.md.

Every ``.py`` under ``ppgen/``, ``models/`` and ``inference/`` is parsed with :mod:`ast`
(``models/`` is ``ppgen.models``, ``inference/`` is ``ppgen.inference``, as installed). An
import anywhere in a file counts, inside functions too: a function-level import does not break a
cycle, it only hides it; so does ``importlib.import_module("a.literal.name")``. Imports under
``if TYPE_CHECKING:`` are left out: they never run.
An import names the deepest module it reaches (``from ppgen.models import flows`` is
``ppgen.models.flows``, ``from ppgen.models import MAF`` is the package ``ppgen.models``);
parent packages that Python initialises on the way are not edges.

Layers (DESIGN.md, section 2): the face (``ppgen/__init__.py``, ``api``, ``cli``, ``demo``,
``__main__``, ``anomaly``, ``analysis``) may import anything; the families ``ppgen.models`` and
``ppgen.inference`` never import each other; the core (everything else under ``ppgen/``) never
imports the families.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: source folder -> the package it installs as
ROOTS = {"ppgen": "ppgen", "models": "ppgen.models", "inference": "ppgen.inference"}
FAMILIES = ("ppgen.models", "ppgen.inference")
FACE = ("ppgen", "ppgen.api", "ppgen.cli", "ppgen.demo", "ppgen.__main__", "ppgen.anomaly",
        "ppgen.analysis")

Graph = dict[str, set[str]]


# ----------------------------------------------------------------------------- the graph
def module_files(root: Path, roots: dict[str, str] = ROOTS) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` under the source folders."""
    modules = {}
    for folder, package in roots.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def import_graph(root: Path, roots: dict[str, str] = ROOTS) -> Graph:
    """``{module: modules it imports}``, restricted to the modules under the source folders."""
    files = module_files(root, roots)
    known = set(files)
    return {name: _imports(name, path, known) for name, path in files.items()}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        elif _is_import_module_call(node):
            targets = [node.args[0].value]
        else:
            continue
        edges |= {m for t in targets if (m := _deepest(t, known)) and m != name}
    return edges


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (type-only imports never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _is_import_module_call(node: ast.AST) -> bool:
    """``importlib.import_module("name")`` (or a bare ``import_module``) with a literal name."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    fn = node.func
    named = (isinstance(fn, ast.Attribute) and fn.attr == "import_module") or (
        isinstance(fn, ast.Name) and fn.id == "import_module")
    first = node.args[0]
    return named and isinstance(first, ast.Constant) and isinstance(first.value, str)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _deepest(target: str, known: set[str]) -> str | None:
    """The deepest known module that ``target`` names (``a.b.attr`` -> ``a.b``)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


# ----------------------------------------------------------------------------- the checks
def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component of more than one module."""
    return [_cycle_in(component, graph) for component in _components(graph) if len(component) > 1]


def _components(graph: Graph) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _cycle_in(component: set[str], graph: Graph) -> list[str]:
    """A shortest cycle through the first module of ``component`` (breadth-first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child in component and child not in parents and child != start:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def layer_of(module: str) -> str:
    """``"face"``, ``"ppgen.models"``, ``"ppgen.inference"`` or ``"core"``."""
    for family in FAMILIES:
        if module == family or module.startswith(family + "."):
            return family
    if any(module == f or module.startswith(f + ".") for f in FACE[1:]) or module == "ppgen":
        return "face"
    return "core"


def layering_violations(graph: Graph) -> list[str]:
    """``"a -> b (rule)"`` for every import the layers forbid."""
    found = []
    for module, targets in sorted(graph.items()):
        source = layer_of(module)
        for target in sorted(targets):
            rule = _forbidden(source, layer_of(target))
            if rule:
                found.append(f"{module} -> {target} ({rule})")
    return found


def _forbidden(source: str, target: str) -> str | None:
    if source == "core" and target in FAMILIES:
        return f"core imports the family {target}"
    if source in FAMILIES and target in FAMILIES and source != target:
        return f"{source} imports {target}: the families never import each other"
    return None


# ----------------------------------------------------------------------------- the project
@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(ROOT)


def test_the_graph_covers_the_three_roots(graph):
    assert {"ppgen.protocol", "ppgen.models.flows", "ppgen.inference"} <= set(graph)
    assert "ppgen.conditions" in graph["ppgen.models.flows"]  # a top-level import
    assert "ppgen.inference" in graph["ppgen.api"]  # an import inside a function counts
    assert "ppgen.models" in graph["ppgen.api"]  # so does importlib.import_module("...")


def test_no_import_cycles(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layers(graph):
    violations = layering_violations(graph)
    assert not violations, "layering violations:\n" + "\n".join(violations)


# ----------------------------------------------------------------------------- the checker
def test_the_checker_finds_a_synthetic_cycle_and_reports_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    two = find_cycles({"x": {"y"}, "y": {"x"}, "p": {"q"}, "q": {"p"}})
    assert sorted(map(tuple, two)) == [("p", "q", "p"), ("x", "y", "x")]


def test_the_checker_finds_layering_violations():
    graph = {
        "ppgen.protocol": {"ppgen.models.flows"},  # core -> family
        "ppgen.models.vae": {"ppgen.inference.variational", "ppgen.protocol"},  # family -> family
        "ppgen.inference": {"ppgen.protocol"},
        "ppgen.api": {"ppgen.inference", "ppgen.models"},  # the face may
        "ppgen.analysis.mcmc": {"ppgen.models"},
    }
    assert layering_violations(graph) == [
        "ppgen.models.vae -> ppgen.inference.variational (ppgen.models imports "
        "ppgen.inference: the families never import each other)",
        "ppgen.protocol -> ppgen.models.flows (core imports the family ppgen.models)",
    ]


def test_the_parser_reads_every_kind_of_import(tmp_path):
    """Top-level, function-level, relative and ``from package import module`` imports are
    edges; ``TYPE_CHECKING`` imports and foreign modules are not."""
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "fam").mkdir()
    files = {
        "pkg/__init__.py": "from pkg.a import f\n",
        "pkg/a.py": "import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from pkg.b import T\n\ndef f():\n    from pkg.sub import c\n",
        "pkg/b.py": "from . import a\nfrom .sub.c import g\nimport importlib\n"
                    "importlib.import_module('pkg.sub')\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from .. import b\nimport pkg.fam.m\n\ndef g():\n    pass\n",
        "fam/__init__.py": "",
        "fam/m.py": "from pkg import a\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, {"pkg": "pkg", "fam": "pkg.fam"})
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.c"},
        "pkg.b": {"pkg.a", "pkg.sub", "pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.b", "pkg.fam.m"},
        "pkg.fam": set(),
        "pkg.fam.m": {"pkg.a"},
    }
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.c", "pkg.b", "pkg.a"]]
