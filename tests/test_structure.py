"""The package's shape: imports at module top, modules a reader can hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "microlib"
MAX_LINES = 550  # "about 500": split a module by what a reader looks for before it grows past


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_microlib_is_imported_at_module_top_only():
    # an import inside a function hides a dependency (and once hid an import cycle); the
    # deliberate deferrals are microlib.lazy.lazy_module and the cli registry's importlib
    found = []
    for path in _modules():
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                names = []
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any(n == "microlib" or n.startswith("microlib.") for n in names):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, found


def test_no_module_outgrows_a_reader():
    sizes = {p.relative_to(PACKAGE.parent): p.read_text().count("\n") for p in _modules()}
    assert len(sizes) > 50  # the walk found the package
    big = {str(p): n for p, n in sizes.items() if n > MAX_LINES}
    assert not big, big


def test_no_import_cycle():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (dev extras)")
    graph = grimp.build_graph("microlib")
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    # a module that can reach itself again through imports is part of a cycle
    cyclic = []
    for start in sorted(imports):
        seen, todo = set(), list(imports[start])
        while todo:
            m = todo.pop()
            if m == start:
                cyclic.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(imports.get(m, ()))
    assert not cyclic, cyclic
