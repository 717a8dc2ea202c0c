"""The database handle: one engine, write transactions that retry on lock contention."""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from callstats.config import is_sqlite, sqlalchemy_url

T = TypeVar("T")
log = logging.getLogger("callstats.db")

_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_WRITE_ATTEMPTS = 8


class Database:
    """An engine plus the transaction discipline callstats uses on it."""

    def __init__(self, database_url: str, pool_size: int = 20, counter_slots: int = 16) -> None:
        self.url = database_url
        self.is_sqlite = is_sqlite(database_url)
        self.engine = _make_engine(database_url, pool_size)
        # SQLite has one writer at a time, so one slot; PostgreSQL spreads writers over several.
        self.counter_slots = 1 if self.is_sqlite else counter_slots
        # SQLite writers of this process queue here instead of in SQLite's busy handler, whose sleeps
        # (up to 100 ms each) collapse throughput under many concurrent writers.
        self._sqlite_writer = threading.Lock() if self.is_sqlite else contextlib.nullcontext()

    def pick_slot(self) -> int:
        """The counter slot a write transaction adds its deltas to."""
        return random.randrange(self.counter_slots)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; its transaction is rolled back at the end."""
        with self.engine.connect() as conn:
            yield conn

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction, retried when a lock conflict aborts it."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self._sqlite_writer, self.engine.connect() as conn:
                    conn.execution_options(callstats_write=True)
                    with conn.begin():
                        return work(conn)
            except DBAPIError as exc:
                if attempt == _WRITE_ATTEMPTS or not _retryable(exc):
                    raise
                log.info("write transaction retried after a lock conflict (attempt %d)", attempt)
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def is_unreachable(exc: BaseException) -> bool:
    """Whether a database error means the database cannot be reached now (503), not a bug (500)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(orig, psycopg.OperationalError):
        return True
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


def _retryable(exc: DBAPIError) -> bool:
    # A unique key taken by a concurrent transaction (a redelivered event, a call id): rerun, then see it.
    if isinstance(exc, IntegrityError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _make_engine(database_url: str, pool_size: int) -> Engine:
    url = sqlalchemy_url(database_url)
    if not is_sqlite(url):
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            # No pre-ping round trip per checkout: a connection that died with a restart fails its
            # request with 503 (never acknowledged), and SQLAlchemy then replaces the whole pool.
            # Bulk writes go through psycopg's pipelined executemany (one parse, one round trip) rather
            # than giant multi-row statements that psycopg re-parses on every call.
            use_insertmanyvalues=False,
        )
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        **({} if memory else {"pool_size": pool_size, "max_overflow": pool_size}),
        poolclass=None if not memory else NullPool,
    )
    _sqlite_discipline(engine)
    return engine


def _sqlite_discipline(engine: Engine) -> None:
    """WAL, sane durability, and BEGIN IMMEDIATE for writes so writers queue instead of deadlocking."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("callstats_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
