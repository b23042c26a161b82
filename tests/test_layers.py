"""The import graph follows the folders (docs/development.md): engine -> text -> backend -> ui, with serve beside; the
modules at the top (errors, paths, terminal, settings, config) sit under them all. Read from the source, so it
stays true: no import upward, no circle, and an import inside a function only with a word on why it waits."""

from __future__ import annotations

import ast
from pathlib import Path

import autocomplete

ROOT = Path(autocomplete.__file__).parent
# What each folder may import besides itself and the top-level modules.
MAY_IMPORT = {"engine": set(), "text": {"engine"}, "serve": {"engine", "text"}, "backend": {"engine", "text", "serve"},
              "ui": {"engine", "text", "serve", "backend"}}


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in ROOT.rglob("*.py")}


def imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported module, line, inside a function) for every import of our own modules."""
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        inner = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for node in ast.walk(fn)}
        typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                # `from autocomplete import paths` imports a module; `from autocomplete.x import f` imports x
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
            else:
                continue
            for target in dict.fromkeys(targets):
                if target in MODULES and target != name:
                    found.append((name, target, node.lineno, id(node) in inner))
    return found


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None  # None: a top-level module (autocomplete.errors)


def test_no_import_goes_against_the_flow():
    upward = []
    for importer, imported, line, _ in imports():
        here, there = _folder(importer), _folder(imported)
        # (the package itself hands out the Python API, which it imports on first use)
        if importer in ("autocomplete", "autocomplete.__main__") or there is None and here is not None or there == here:
            continue
        if here is None or there not in MAY_IMPORT[here]:
            upward.append(f"{importer}:{line} imports {imported}")
    assert not upward, "\n".join(upward)


def test_no_module_imports_itself_round_a_circle():
    graph: dict[str, set[str]] = {}
    for importer, imported, _, _ in imports():
        graph.setdefault(importer, set()).add(imported)
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for nxt in sorted(graph.get(module, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [module, nxt]) if nxt in path else f"{module} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not circles, "\n".join(circles)


def test_an_import_inside_a_function_says_why_it_waits():
    unsaid = []
    for importer, imported, line, inside in imports():
        if inside and "#" not in MODULES[importer].read_text().splitlines()[line - 1]:
            unsaid.append(f"{importer}:{line} imports {imported}")
    assert not unsaid, "\n".join(unsaid)
