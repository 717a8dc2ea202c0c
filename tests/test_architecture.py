"""The shape of src/callstats, read from its imports (ast, nothing imported or run).

- A migration imports no live code: a later change of the code must not change an old migration.
- No package imports one that imports it back (a package is a subpackage of callstats, or a top
  module such as web.py), directly or through a longer loop.
- No import runs up the layers of LAYERS, and every package has its place there.
- callstats.core imports nothing else of callstats, and nothing outside the standard library but
  phonenumbers.
- A module documented as pure (its docstring says so) reaches no database layer: neither it nor
  anything it imports when loaded imports sqlalchemy, psycopg or callstats.db.
"""

from __future__ import annotations

import ast
import itertools
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import callstats

SRC = Path(callstats.__file__).parent
MIGRATIONS = SRC / "db" / "migrations" / "versions"
DATABASE_LAYER = ("sqlalchemy", "psycopg", "callstats.db")

# The layers, bottom first: a package may import its own layer's packages (without a loop) and those
# below, never one above. docs/architecture.md shows the same table.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core", "clock", "turns"}),  # pure: the rules and small values
    # what every request needs
    frozenset({"config", "errors", "ids", "bodies", "logs", "urls", "sealing", "pages", "metrics"}),
    frozenset({"db", "feed", "ratelimit"}),  # storage, the change feed, the rate limit
    frozenset({"accounts"}),  # keys: every domain checks them
    frozenset({"web"}),  # the ASGI plumbing: dispatcher, hot endpoint base (reads the key), errors
    frozenset({"stats"}),  # the counters read
    frozenset(
        {"campaigns", "calls", "timeseries", "reports", "alerts"}
    ),  # the domains that write or read through stats
    frozenset(
        {"stream", "dashboard", "openapi", "importer", "exporter", "watch", "serving", "carriers"}
    ),  # surfaces
    frozenset({"app", "demo", "cli"}),  # entry points
)
CORE_MAY_IMPORT = ("phonenumbers",)


def _module_name(path: Path) -> str:
    parts = ["callstats", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _path_of(module: str) -> Path | None:
    """The source file of a callstats module or package, None for anything else."""
    if module != "callstats" and not module.startswith("callstats."):
        return None
    base = SRC.joinpath(*module.split(".")[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported(node: ast.Import | ast.ImportFrom, path: Path) -> Iterator[str]:
    """The modules an import statement names: `from a.b import c` is a.b, and a.b.c when that is a module."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    module = node.module or ""
    if node.level:
        package = _module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        kept = package[: len(package) - node.level + 1]
        module = ".".join([*kept, module] if module else kept)
    yield module
    for alias in node.names:
        if _path_of(f"{module}.{alias.name}") is not None:
            yield f"{module}.{alias.name}"


def _all_imports(path: Path) -> set[str]:
    """Every module a file imports anywhere (in functions and `if TYPE_CHECKING:` blocks too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in _imported(node, path)
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _load_time_imports(path: Path) -> set[str]:
    """The modules loading a file imports: its top-level statements (inside top-level if/try too),
    not function bodies nor `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()
    pending: list[ast.stmt] = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(_imported(node, path))
        elif isinstance(node, ast.If):
            pending.extend(node.orelse if _is_type_checking(node) else [*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)
    return found


def _source_files() -> list[Path]:
    return sorted(path for path in SRC.rglob("*.py") if "migrations" not in path.relative_to(SRC).parts)


def _package_of(module: str) -> str | None:
    """callstats.db.counters is in package db, callstats.web in web; callstats itself in none."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "callstats" else None


def package_imports() -> dict[str, dict[str, set[str]]]:
    """{package: {package it imports: the modules that import it}}, over every import in the source."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in _source_files():
        module = _module_name(path)
        source = _package_of(module)
        for name in _all_imports(path):
            target = _package_of(name)
            if source is None or target is None or target == source or _path_of(name) is None:
                continue
            graph.setdefault(source, {}).setdefault(target, set()).add(module)
    return graph


def _strongly_connected(graph: dict[str, dict[str, set[str]]]) -> list[set[str]]:
    """The groups of packages that reach one another through imports (Tarjan), those of two or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted({*graph, *(t for targets in graph.values() for t in targets)}):
        if node not in index:
            visit(node)
    return groups


def test_migrations_import_no_live_code() -> None:
    """No migration revision imports callstats: what it creates and backfills is frozen in it.

    (db/migrations/env.py, Alembic's set-up rather than a revision, reads the live schema's metadata.)
    """
    revisions = sorted(MIGRATIONS.glob("*.py"))
    assert len(revisions) >= 4
    live = {
        f"{path.name} imports {name}"
        for path in revisions
        for name in _all_imports(path)
        if name == "callstats" or name.startswith("callstats.")
    }
    assert not live


def test_no_package_imports_one_that_imports_it_back() -> None:
    """No two packages import each other, and no longer loop forms."""
    graph = package_imports()
    assert "db" in graph["calls"] and "errors" in graph["web"]  # the graph is read at all
    mutual = {
        f"{a} <-> {b}": sorted(graph[a][b] | graph[b][a])
        for a, b in itertools.combinations(sorted(graph), 2)
        if b in graph[a] and a in graph.get(b, {})
    }
    assert not mutual, f"packages importing each other (through these modules): {mutual}"
    loops = [sorted(group) for group in _strongly_connected(graph)]
    assert not loops, f"packages that reach each other through a longer import loop: {loops}"


def _layer_of(package: str) -> int | None:
    return next((n for n, layer in enumerate(LAYERS) if package in layer), None)


def test_no_import_runs_up_the_layers() -> None:
    """Each package sits in one layer of LAYERS and imports only its own layer and those below."""
    graph = package_imports()
    packages = {*graph, *(t for targets in graph.values() for t in targets)}
    assert {"core", "calls", "stats", "app"} <= packages
    unplaced = sorted(p for p in packages if _layer_of(p) is None)
    assert not unplaced, f"packages without a place in LAYERS: {unplaced}"
    upward = {
        f"{source} -> {target}": sorted(modules)
        for source, targets in graph.items()
        for target, modules in targets.items()
        if (_layer_of(target) or 0) > (_layer_of(source) or 0)
    }
    assert not upward, f"imports running up the layers (through these modules): {upward}"


def test_core_imports_nothing_else_of_callstats() -> None:
    """Every module of callstats.core imports only callstats.core, the standard library and
    CORE_MAY_IMPORT."""
    core = sorted((SRC / "core").glob("*.py"))
    assert len(core) >= 6
    outside = {
        f"{path.name} imports {name}"
        for path in core
        for name in _all_imports(path)
        if not (name == "callstats.core" or name.startswith("callstats.core."))
        and name.split(".")[0] not in {*sys.stdlib_module_names, *CORE_MAY_IMPORT}
    }
    assert not outside


def _documented_pure() -> dict[str, Path]:
    """Every module whose docstring says it is pure."""
    found: dict[str, Path] = {}
    for path in _source_files():
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if re.search(r"\bpure\b", docstring, re.IGNORECASE):
            found[_module_name(path)] = path
    return found


def _loaded_with(module: str) -> dict[str, list[str]]:
    """Every module that loading `module` loads, parent packages included, each with the chain leading to
    it from `module`; modules outside callstats are leaves."""
    chains: dict[str, list[str]] = {module: [module]}
    pending = [module]
    while pending:
        current = pending.pop()
        path = _path_of(current)
        if path is None:
            continue
        parents = [".".join(current.split(".")[:n]) for n in range(1, current.count(".") + 1)]
        for name in [*_load_time_imports(path), *parents]:
            if name not in chains:
                chains[name] = [*chains[current], name]
                pending.append(name)
    return chains


def test_pure_modules_reach_no_database_layer() -> None:
    """Neither a module documented as pure nor anything it loads imports sqlalchemy, psycopg or
    callstats.db."""
    pure = _documented_pure()
    assert {"callstats.stats.response", "callstats.timeseries.buckets", "callstats.core.lifecycle"} <= set(
        pure
    )
    reached = {
        module: " -> ".join(chain)
        for module in pure
        for name, chain in _loaded_with(module).items()
        if any(name == layer or name.startswith(layer + ".") for layer in DATABASE_LAYER)
    }
    assert not reached, f"pure modules reaching the database layer: {reached}"
