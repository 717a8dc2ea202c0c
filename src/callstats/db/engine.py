"""The database handle: one engine, write transactions that retry on lock contention, bounded waits.

Every wait on the database is bounded by `timeout_seconds` (CALLSTATS_DB_TIMEOUT_SECONDS in the
server): connecting (psycopg's connect_timeout), each step on a connection (one statement, a
pipeline, a commit or a rollback: the Watchdog below), a free pooled connection (pool_timeout) and,
on SQLite, a lock (busy_timeout and this process's writer lock). A wait that runs out raises a
database error that callers show as 503 with Retry-After; nothing is acknowledged that did not commit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool

from callstats.config import is_sqlite, sqlalchemy_url

if TYPE_CHECKING:  # the CLI's commands load this module without prometheus-client
    from callstats.metrics.instruments import Metrics

T = TypeVar("T")
log = logging.getLogger("callstats.db")

_RETRYABLE_SQLSTATES = {"40001", "40P01"}
# A server-side bound that fired (statement_timeout, lock_timeout): the database is busy, try later.
_BUSY_SQLSTATES = {"57014", "55P03"}
_WRITE_ATTEMPTS = 8
_UNBOUNDED_BUSY_MS = 30_000  # SQLite's lock wait when no timeout is set (CLI tools)


class DatabaseTimeout(OperationalError):
    """No connection, lock or answer within the timeout: shown as 503, like an unreachable database.

    A DBAPIError so that every handler that shows database errors shows this one the same way.
    """

    def __init__(self, what: str) -> None:
        super().__init__(what, None, TimeoutError(what))


class Database:
    """An engine plus the transaction discipline callstats uses on it.

    `timeout_seconds` bounds each wait on the database (None: unbounded, for operator tools whose
    statements may legitimately run long, such as reconcile on a large database).
    """

    def __init__(
        self,
        database_url: str,
        pool_size: int = 20,
        counter_slots: int = 16,
        timeout_seconds: float | None = None,
    ) -> None:
        self.url = database_url
        self.pool_size = pool_size
        self.is_sqlite = is_sqlite(database_url)
        self.timeout_seconds = timeout_seconds
        self.watchdog = Watchdog(timeout_seconds) if timeout_seconds and not self.is_sqlite else None
        self.engine = _make_engine(database_url, pool_size, timeout_seconds)
        if self.watchdog is not None:
            _watch_steps(self.engine, self.watchdog)
        # SQLite has one writer at a time, so one slot; PostgreSQL spreads writers over several.
        self.counter_slots = 1 if self.is_sqlite else counter_slots
        # SQLite writers of this process queue here instead of in SQLite's busy handler, whose sleeps
        # (up to 100 ms each) collapse throughput under many concurrent writers.
        self._sqlite_writer = threading.Lock() if self.is_sqlite else None

    def report_pool(self, metrics: Metrics) -> None:
        """Keep the pool's figures in `metrics`: its size and most connections (set now), and the
        connections checked out (moved by the pool's own checkout, checkin and detach events)."""
        metrics.pool_configured(
            self.pool_size, 2 * self.pool_size
        )  # max_overflow is pool_size (_make_engine)
        checked_out = metrics.pool_checked_out
        event.listen(self.engine, "checkout", lambda *_: checked_out.inc())
        event.listen(self.engine, "checkin", lambda *_: checked_out.dec())
        event.listen(self.engine, "detach", lambda *_: checked_out.dec())  # a detached one never checks in

    def pick_slot(self) -> int:
        """The counter slot a write transaction adds its deltas to."""
        return random.randrange(self.counter_slots)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; its transaction is rolled back at the end."""
        with self._connect() as conn:
            yield conn

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction, retried when a lock conflict aborts it (while time is left)."""
        deadline = time.monotonic() + self.timeout_seconds if self.timeout_seconds else math.inf
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self._writer_lock(deadline), self._connect() as conn:
                    conn.execution_options(callstats_write=True)
                    with conn.begin():
                        return work(conn)
            except DBAPIError as exc:
                if attempt == _WRITE_ATTEMPTS or not _retryable(exc) or time.monotonic() >= deadline:
                    raise
                log.info("write transaction retried after a lock conflict (attempt %d)", attempt)
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A pooled connection; waiting longer than the timeout for a free one is a DatabaseTimeout."""
        try:
            conn = self.engine.connect()
        except PoolTimeout:
            raise DatabaseTimeout("no free database connection within the timeout") from None
        with conn:
            yield conn

    @contextmanager
    def _writer_lock(self, deadline: float) -> Iterator[None]:
        """SQLite: this process's single writer slot, waited for until `deadline` at most."""
        lock = self._sqlite_writer
        if lock is None:
            yield
            return
        wait = deadline - time.monotonic()
        if not lock.acquire(timeout=-1 if math.isinf(wait) else max(wait, 0.0)):
            raise DatabaseTimeout("database is locked: another write held it past the timeout")
        try:
            yield
        finally:
            lock.release()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.watchdog is not None:
            self.watchdog.stop()


class Watchdog:
    """Hangs up a PostgreSQL connection whose current step has run past the timeout.

    A frozen server (SIGSTOP) or a network partition keeps the TCP session open and never answers:
    statement_timeout needs the server to act, and the kernel still answers TCP keepalives, so only
    the client can end the wait. One thread checks the armed connections every tick and shuts down
    the socket of a late one; the blocked driver call then fails with a lost connection (psycopg
    OperationalError), which SQLAlchemy invalidates and callers show as 503.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(0.1, seconds / 10)
        self._armed: dict[int, tuple[Any, float]] = {}  # id(connection) -> (connection, deadline)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def arm(self, connection: Any) -> bool:
        """Start (or restart) a step's clock on a psycopg connection (sync or async); whether it ran."""
        with self._lock:
            running = self._armed.get(id(connection)) is not None
            self._armed[id(connection)] = (connection, time.monotonic() + self.seconds)
            if self._thread is None:
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="callstats-db-watchdog", daemon=True)
                self._thread.start()
        return running

    def disarm(self, connection: Any) -> None:
        """The step ended: the connection is not watched until the next one."""
        with self._lock:
            self._armed.pop(id(connection), None)

    @contextmanager
    def step(self, connection: Any) -> Iterator[None]:
        """One bounded step on `connection`; inside another step (a pipeline), it restarts its clock."""
        outer = self.arm(connection)
        try:
            yield
        finally:
            if not outer:
                self.disarm(connection)

    def stop(self) -> None:
        """Stop the thread (it starts again with the next armed step)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(1)

    def _run(self) -> None:
        while not self._stopping.wait(self.tick):
            now = time.monotonic()
            with self._lock:
                late = [conn for conn, deadline in self._armed.values() if deadline <= now]
                for conn in late:
                    del self._armed[id(conn)]
                    _hang_up(conn, self.seconds)


class SqliteChangeProbe:
    """`PRAGMA data_version` on an SQLite connection kept for reading alone: it moves exactly when
    another connection commits, so what was read on it since the last move is still the latest.

    `connection` is that driver connection (open after the first `version()`); nothing may write on it.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._proxy: Any = None
        self.connection: Any = None

    def version(self) -> int:
        """The current data version (microseconds: callers run it on the event loop)."""
        if self.connection is None:
            self._proxy = self.db.engine.raw_connection()
            self.connection = self._proxy.driver_connection
        version: int = self.connection.execute("PRAGMA data_version").fetchone()[0]
        return version

    def close(self) -> None:
        """Give the connection back (the next `version()` opens another)."""
        if self._proxy is not None:
            with contextlib.suppress(Exception):
                self._proxy.close()
            self._proxy = self.connection = None


def _hang_up(connection: Any, seconds: float) -> None:
    """Shut the connection's socket down (a dup of its fd: psycopg still owns and closes the original)."""
    with contextlib.suppress(OSError, psycopg.Error):
        if connection.closed:
            return
        with socket.fromfd(connection.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        log.warning("database step took over %.1f s: connection closed (frozen or partitioned?)", seconds)


_watchdogs: weakref.WeakKeyDictionary[Engine, Watchdog] = weakref.WeakKeyDictionary()


@contextmanager
def bounded_step(conn: Connection) -> Iterator[None]:
    """One step run directly on the driver's connection (driver.py), bounded like any other."""
    watchdog = _watchdogs.get(conn.engine)
    if watchdog is None:
        yield
        return
    with watchdog.step(conn.connection.dbapi_connection):
        yield


def _watch_steps(engine: Engine, watchdog: Watchdog) -> None:
    """Arm the watchdog around every statement, commit and rollback SQLAlchemy runs on this engine."""
    _watchdogs[engine] = watchdog

    def arm_conn(conn: Connection, *_args: Any) -> None:
        if not conn.invalidated:  # an invalidated connection has no driver connection left to watch
            watchdog.arm(conn.connection.dbapi_connection)

    def disarm_conn(conn: Connection, *_args: Any) -> None:
        if not conn.invalidated:
            watchdog.disarm(conn.connection.dbapi_connection)

    def arm_dbapi(dbapi_connection: Any, *_args: Any) -> None:
        watchdog.arm(dbapi_connection)

    def disarm_dbapi(dbapi_connection: Any, *_args: Any) -> None:
        if dbapi_connection is not None:
            watchdog.disarm(dbapi_connection)

    event.listen(engine, "before_cursor_execute", arm_conn)
    event.listen(engine, "after_cursor_execute", disarm_conn)
    event.listen(engine, "commit", arm_conn)
    event.listen(engine, "rollback", arm_conn)
    event.listen(engine, "reset", arm_dbapi)  # the rollback a connection gets when it is given back
    event.listen(engine, "checkin", disarm_dbapi)
    event.listen(engine, "close", disarm_dbapi)


def is_unreachable(exc: BaseException) -> bool:
    """Whether a database error means the database cannot serve now (503), not a bug (500)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(orig, psycopg.OperationalError | TimeoutError):
        return True
    if getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
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


def _make_engine(database_url: str, pool_size: int, timeout: float | None) -> Engine:
    url = sqlalchemy_url(database_url)
    pool_timeout = {"pool_timeout": timeout} if timeout else {}
    if not is_sqlite(url):
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args=_postgres_bounds(url, timeout),
            # No pre-ping round trip per checkout: a connection that died with a restart fails its
            # request with 503 (never acknowledged), and SQLAlchemy then replaces the whole pool.
            # Bulk writes go through psycopg's pipelined executemany (one parse, one round trip) rather
            # than giant multi-row statements that psycopg re-parses on every call.
            use_insertmanyvalues=False,
            **pool_timeout,
        )
    memory = url in ("sqlite://", "sqlite:///:memory:")
    busy_ms = round(timeout * 1000) if timeout else _UNBOUNDED_BUSY_MS
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
        **({} if memory else {"pool_size": pool_size, "max_overflow": pool_size, **pool_timeout}),
        poolclass=None if not memory else NullPool,
    )
    _sqlite_discipline(engine, busy_ms)
    return engine


def _postgres_bounds(url: str, timeout: float | None) -> dict[str, Any]:
    """libpq parameters bounding connecting and each statement, unless the URL sets its own.

    connect_timeout is whole seconds, at least 2 (libpq's rule, which psycopg follows); the server
    cancels a statement or a lock wait past statement_timeout / lock_timeout (PostgreSQL docs,
    "Client Connection Defaults"), and the Watchdog covers a server that cannot.
    """
    if not timeout:
        return {}
    given = make_url(url).query
    bounds: dict[str, Any] = {}
    if "connect_timeout" not in given:
        bounds["connect_timeout"] = max(2, math.ceil(timeout))
    if "options" not in given:
        ms = round(timeout * 1000)
        bounds["options"] = f"-c statement_timeout={ms} -c lock_timeout={ms}"
    return bounds


def _sqlite_discipline(engine: Engine, busy_ms: int) -> None:
    """WAL, sane durability, and BEGIN IMMEDIATE for writes so writers queue instead of deadlocking."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("callstats_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
