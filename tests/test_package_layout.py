"""The package's shape, as a newcomer reads it: no import cycles (imports inside functions
counted too), no private name taken from another module, no module longer than a sitting's
reading, and every public function and class saying which lesson teaches it (d2l's habit)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"
MAX_LINES = 450
LESSON_TAG = re.compile(r"(Lessons? \d\d(?:(?:, | and |-)\d\d)*|TEACHING\.md|README\.md)\.$")


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str]]:
    """(module imported, name imported) for every import of the package inside `path`, at any depth."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            if not target or not target.startswith(PACKAGE.name):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, "") if sub in known else (target, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith(PACKAGE.name)]
    return [(m, n) for m, n in found if m in known and m != name]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def import_graph(package: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    """module -> modules it imports; and 'a imports b._name' for each private name crossing modules."""
    known = modules(package)
    graph, private = {}, []
    for name, path in known.items():
        pairs = imports_of(name, path, known)
        graph[name] = {m for m, _ in pairs}
        private += [f"{name} imports {m}.{n}" for m, n in pairs if n.startswith("_")]
    return graph, private


def test_no_import_cycle_counting_imports_inside_functions():
    graph, _ = import_graph()
    assert len(graph) > 40  # the walk found the package
    assert cycles(graph) == []


def test_no_module_imports_a_private_name_from_another():
    assert import_graph()[1] == []


def test_the_checks_can_fail(tmp_path):
    """A made-up package with a loop through a function-level import and a private name."""
    pkg = tmp_path / "course_utils"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import _helper\n")
    (pkg / "b.py").write_text("def _helper():\n    from . import a\n")
    graph, private = import_graph(pkg)
    assert cycles(graph) == [["course_utils.a", "course_utils.b"]]
    assert private == ["course_utils.a imports course_utils.b._helper"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_a_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines; split it by what it holds."


def untagged(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """Public module-level functions and classes whose docstring does not end with its lesson."""
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(root)}:{node.lineno} {node.name}" for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
            and not LESSON_TAG.search((ast.get_docstring(node) or "").strip())]


def test_every_public_function_and_class_names_the_lesson_that_teaches_it():
    missing = [entry for path in sorted(PACKAGE.rglob("*.py")) for entry in untagged(path)]
    assert missing == [], "docstrings should end with e.g. 'Lesson 06.':\n" + "\n".join(missing)


def test_the_lesson_tag_check_can_fail(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('def good():\n    """Does a thing. Lessons 07 and 13."""\n\n\n'
                    'def bad():\n    """Does a thing (lesson 07)."""\n\n\nclass Bare:\n    pass\n\n\n'
                    'def _private():\n    pass\n')
    assert untagged(path, tmp_path) == ["probe.py:5 bad", "probe.py:9 Bare"]
