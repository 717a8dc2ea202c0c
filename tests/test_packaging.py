"""The distribution's metadata: every third-party package the code imports is declared, and the licence
uses the SPDX form (the table form made setuptools print a deprecation warning at every install)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0]).lower()


def imported_modules() -> set[str]:
    """Top-level names of every absolute import in src/callstats, the standard library left out."""
    found: set[str] = set()
    for path in (ROOT / "src" / "callstats").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"callstats"}


def test_every_imported_package_is_a_declared_dependency() -> None:
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    providers = packages_distributions()
    missing = {
        module: providers.get(module)
        for module in imported_modules()
        if not {_name(d) for d in providers.get(module, [module])} & declared
    }
    assert not missing, f"imported but not in [project] dependencies: {missing}"
    assert "rich" in declared


def test_the_licence_is_an_spdx_expression_with_its_files() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "LICENSE" in project["license-files"]
    setuptools = next(r for r in PYPROJECT["build-system"]["requires"] if _name(r) == "setuptools")
    assert setuptools.replace(" ", "") == "setuptools>=77"  # the first to read `license` as SPDX
