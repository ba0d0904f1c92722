"""Where code lives: shared test helpers in ``tests/support``, test modules importing
no other test module, and the packages importing nothing from the tests.

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
