"""The shape of the test suite: test modules hold tests, helpers live in helper modules.

A helper that two test modules share belongs in a module not named test_*.py (tests/servers.py,
tests/factories.py, ...) or, when it is a fixture, in a conftest.py; importing a test module would
also collect and run its tests' module-level set-up in the importer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def module_name(path: Path) -> str:
    """`tests.calls.test_group` for tests/calls/test_group.py."""
    return ".".join(("tests", *path.relative_to(TESTS).with_suffix("").parts))


def imported_modules(source: str, module: str) -> set[str]:
    """Every module `source` (the text of `module`) imports: relative imports resolved, and for
    `from a import b` both a and a.b (b may be a module)."""
    package = module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            imported = ".".join([*base, *([node.module] if node.module else [])])
            found.add(imported)
            found.update(f"{imported}.{alias.name}" for alias in node.names)
    return found


def is_test_module(name: str) -> bool:
    """A module pytest collects: tests.<...>.test_*."""
    return name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")


def test_no_test_module_imports_another() -> None:
    """No file under tests/ imports a test_*.py module."""
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50, "the walk must see the whole suite"
    offenders = {
        str(path.relative_to(TESTS)): sorted(
            filter(is_test_module, imported_modules(path.read_text(), module_name(path)))
        )
        for path in files
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize(
    ("source", "test_module"),
    [
        ("import tests.test_errors", "tests.test_errors"),
        ("from tests.calls import test_group", "tests.calls.test_group"),
        ("from tests.calls.test_group import http_client", "tests.calls.test_group"),
        ("from .test_lifecycle import apply_all", "tests.calls.test_lifecycle"),
        ("from ..test_errors import assert_error", "tests.test_errors"),
    ],
)
def test_each_form_of_import_is_seen(source: str, test_module: str) -> None:
    """Absolute, from-package and relative imports of a test module are all found."""
    found = imported_modules(source, "tests.calls.sample")
    assert [name for name in sorted(found) if is_test_module(name)] == [test_module]


def test_helper_imports_pass() -> None:
    """Importing helper modules is what the suite should do."""
    found = imported_modules("from tests.factories import call_event\nimport tests.servers", "tests.calls.x")
    assert not [name for name in found if is_test_module(name)]


def always_true_asserts(source: str) -> list[str]:
    """Assertions that cannot fail: a truthy constant, or a comparison of an expression with itself
    (the same source on both sides, no call in it, so both sides are the same value)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant) and node.test.value:
            found.append(ast.unparse(node))
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            pure = not any(isinstance(inner, ast.Call | ast.Await) for inner in ast.walk(node))
            if pure and len({ast.dump(operand) for operand in operands}) < len(operands):
                found.append(ast.unparse(node))
    return found


def test_no_assertion_compares_a_value_with_itself() -> None:
    """No `assert True`, no `x == x`, no `message == message` anywhere in the suite."""
    found = {
        str(path.relative_to(TESTS)): always_true_asserts(path.read_text()) for path in TESTS.rglob("*.py")
    }
    assert {path: asserts for path, asserts in found.items() if asserts} == {}


def test_the_self_comparison_check_sees_them() -> None:
    """The check finds each kind, and leaves alone comparisons that can fail."""
    source = (
        "assert True\n"
        "assert body['message'] == body['message']\n"
        "assert a is a\n"
        "assert run(1) == run(1)\n"  # two runs: can differ
        "assert body['message'] == expected\n"
    )
    assert always_true_asserts(source) == ["assert True", "body['message'] == body['message']", "a is a"]
