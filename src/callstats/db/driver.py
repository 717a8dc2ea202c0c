"""Core statements run on the driver's connection: compiled once per dialect, then executed directly.

SQLAlchemy's per-execute bookkeeping (cache key, parameter processing, result
objects) costs more than SQLite's own work on a one-row statement, and the write
path runs a dozen statements per request. They stay Core constructs (one schema
for both dialects); only their execution skips the framework, on the caller's
connection and inside its transaction. Types here need no bind or result
processing (strings and integers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from callstats.db.engine import bounded_step

Params = Mapping[str, Any]


class Statement:
    """A Core statement, compiled on first use for each dialect and IN-list length."""

    def __init__(self, statement: Executable, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[str, SQLCompiler] = {}
        self._sql: dict[tuple[str, tuple[int, ...]], str] = {}

    def rows(self, conn: Connection, params: Params) -> list[tuple[Any, ...]]:
        """Run it with `params` and fetch every row."""
        sql, args = self._bound(conn.dialect, params)
        with _cursor(conn, sql, args) as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def send(self, conn: Connection, params: Params) -> Callable[[], list[tuple[Any, ...]]]:
        """Run it now, fetch its rows later: inside `pipelined`, queries sent together share one round trip.

        Fetch inside the same `pipelined` block (its errors are translated there).
        """
        if conn.dialect.name != "postgresql":
            rows = self.rows(conn, params)
            return lambda: rows
        sql, args = self._bound(conn.dialect, params)
        dbapi_connection: Any = conn.connection.dbapi_connection
        cursor = dbapi_connection.cursor()
        with bounded_step(conn):
            cursor.execute(sql, args)

        def fetch() -> list[tuple[Any, ...]]:
            try:
                return list(cursor.fetchall())
            finally:
                cursor.close()

        return fetch

    def execute(self, conn: Connection, params: Params) -> None:
        """Run it once with `params` (no rows wanted)."""
        sql, args = self._bound(conn.dialect, params)
        with _cursor(conn, sql, args) as cursor:
            cursor.execute(sql, args)

    def executemany(self, conn: Connection, rows: Sequence[Params]) -> None:
        """Run it for every row (no IN lists here): one prepared statement, pipelined where the driver can."""
        sql = self._render(conn.dialect, self._compile(conn.dialect), {})
        with _cursor(conn, sql, rows) as cursor:
            if len(rows) == 1:  # psycopg's executemany pays for a pipeline round trip of its own
                cursor.execute(sql, rows[0])
            else:
                cursor.executemany(sql, rows)

    def _compile(self, dialect: Dialect) -> SQLCompiler:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            # Named parameters on both drivers (sqlite3 :name, psycopg %(name)s): rows go in as they are.
            named = type(dialect)(paramstyle="named") if dialect.paramstyle == "qmark" else dialect  # type: ignore[call-arg]
            compiled = self.statement.compile(dialect=named, column_keys=self.column_keys)  # type: ignore[attr-defined]
            assert isinstance(compiled, SQLCompiler) and compiled.positiontup is None
            self._compiled[dialect.name] = compiled
        return compiled

    def _bound(self, dialect: Dialect, params: Params) -> tuple[str, dict[str, Any]]:
        """The SQL (IN lists rendered for these lengths) and the driver's arguments.

        On PostgreSQL an IN list is one array parameter (`= ANY(%(ids)s)`): one statement text, so one
        prepared statement, whatever the list's length (a group of 1 to 4,000 events used to make a
        new statement text, parsed and planned again, for every length; psycopg keeps 100 prepared).
        """
        compiled = self._compile(dialect)
        lists = {name: params[name] for name, bind in compiled.binds.items() if bind.expanding}
        if dialect.name == "postgresql":
            arrays = {name: list(values) for name, values in lists.items()}
            return self._render(dialect, compiled, {name: () for name in lists}), {**params, **arrays}
        named = {name: value for name, value in params.items() if name not in lists}
        for name, values in lists.items():
            named.update({f"{name}_{i}": value for i, value in enumerate(values)})
        return self._render(dialect, compiled, lists), named

    def _render(self, dialect: Dialect, compiled: SQLCompiler, lists: Mapping[str, Sequence[Any]]) -> str:
        key = (dialect.name, tuple(len(values) for values in lists.values()))
        sql = self._sql.get(key)
        if sql is None:
            sql = compiled.string
            mark = ":{}" if dialect.paramstyle == "qmark" else "%({})s"
            if dialect.name == "postgresql":
                for name in lists:
                    sql = sql.replace(f"IN (__[POSTCOMPILE_{name}])", f"= ANY({mark.format(name)})")
                assert "__[POSTCOMPILE_" not in sql, sql
                self._sql[key] = sql
                return sql
            for name, values in lists.items():
                assert values, f"empty IN list {name}"
                marks = ", ".join(mark.format(f"{name}_{i}") for i in range(len(values)))
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", marks)
            self._sql[key] = sql
        return sql


@contextmanager
def _cursor(conn: Connection, sql: str, args: Any) -> Iterator[Any]:
    """A driver cursor, its use bounded by the database's timeout; driver errors come out as SQLAlchemy's
    (retries and 503s depend on them)."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        with bounded_step(conn):
            yield cursor
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _translated(conn, exc, sql, args, cursor) from exc
    finally:
        cursor.close()


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Statements inside go out without waiting for each other's results (PostgreSQL): one round trip."""
    if conn.dialect.name != "postgresql":
        yield
        return
    dbapi_connection: Any = conn.connection.dbapi_connection
    try:
        with bounded_step(conn), dbapi_connection.pipeline():
            yield
    except conn.dialect.loaded_dbapi.Error as exc:  # a statement's error arrives when the pipeline syncs
        raise _translated(conn, exc, "(pipeline)", None, None) from exc


def _translated(conn: Connection, exc: Exception, sql: str, args: Any, cursor: Any) -> StatementError:
    """A driver error as SQLAlchemy's (retries and 503s depend on it); a lost connection is invalidated."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)  # type: ignore[arg-type]
    if lost:
        conn.invalidate(exc)
    error_type: type[Exception] = conn.dialect.loaded_dbapi.Error
    return DBAPIError.instance(sql, args, exc, error_type, connection_invalidated=lost)
