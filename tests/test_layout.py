"""Where code lives: shared test helpers in ``tests/support``, test modules importing
no other test module, the packages importing nothing from the tests, and no import cycle
among the packages' modules.

A test module that imports another runs (and collects) that module's tests' set-up, and
ties the two together in ways neither name shows; helpers shared between tests go in the
``support`` package instead.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module name) of every import in ``path``, nested ones included."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def packages() -> list[str]:
    """The project's packages, as pyproject.toml lists them for the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({name.rstrip("*") for name in include})


def test_helpers_live_in_support_not_in_loose_files_beside_the_tests() -> None:
    loose = [
        p.name
        for p in TESTS.glob("*.py")
        if p.name != "conftest.py" and not p.name.startswith("test_")
    ]
    assert loose == [], f"move shared helpers into tests/support/: {loose}"


def test_no_module_under_tests_imports_a_test_module() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0].startswith("test_") or module.split(".")[0] == "conftest"
    ]
    assert offending == [], "\n".join(offending)


def test_no_package_module_imports_from_the_tests() -> None:
    # Everything importable from tests/ (what pytest puts on sys.path), and tests itself.
    from_tests = {"tests"} | {
        p.stem if p.is_file() else p.name
        for p in TESTS.iterdir()
        if (p.suffix == ".py") or (p / "__init__.py").exists()
    }
    assert {"support", "conftest", "test_layout"} <= from_tests
    names = packages()
    assert "tickerplant" in names and "queries" in names
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for name in names
        for path in sorted((ROOT / name).rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in from_tests
    ]
    assert offending == [], "\n".join(offending)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in it (lazy and type-checking
    imports too: a cycle hidden in a function is still a cycle). ``from pkg import mod``
    counts as importing ``pkg.mod``, not ``pkg``."""
    paths = {module_name(p): p for name in packages() for p in (ROOT / name).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(), str(path))
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                subs = {f"{node.module}.{a.name}" for a in node.names} & paths.keys()
                found |= subs
                if len(subs) < len(node.names):
                    found.add(node.module)
        graph[module] = (found & paths.keys()) - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_no_import_cycles_among_the_packages_modules() -> None:
    graph = import_graph()
    assert "queries.q.exprs" in graph and "queries.q.handlers" in graph["queries.q.exprs"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])
