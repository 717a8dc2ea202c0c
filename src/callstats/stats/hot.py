"""The stats read: one query for the key and the counters, on connections kept for it alone."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import AsyncConnection

from callstats.db.engine import Database
from callstats.stats.counters import key_and_counters_select

POSTGRES_CONNECTIONS = 8


class HotReader:
    """Runs the stats query on raw driver connections: SQLAlchemy compiles it once, not per request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        compiled = key_and_counters_select().compile(dialect=db.engine.dialect)
        self.sql = compiled.string
        self.positional = compiled.positiontup
        self._proxy: Any = None
        self._sqlite: Any = None
        self._seen: dict[Any, tuple[Any, ...] | None] = {}
        self._version = -1
        # PostgreSQL: a few autocommit connections, each serving one request at a time. A pool's
        # per-checkout bookkeeping cost as much CPU as the query itself.
        self._idle: list[AsyncConnection[Any]] = []
        self._free: asyncio.Semaphore | None = None

    def _params(self, key_id: str, campaign_id: str) -> Any:
        values = {"key_id": key_id, "campaign_id": campaign_id}
        if self.positional is not None:
            return tuple(values[name] for name in self.positional)
        return values

    def read(self, key_id: str, campaign_id: str) -> tuple[Any, ...] | None:
        """(account_id, secret_hash, scope, revoked_at, campaign_name, *summed counters) or None (SQLite)."""
        return self._read_sqlite(self._params(key_id, campaign_id))

    async def aread(self, key_id: str, campaign_id: str) -> tuple[Any, ...] | None:
        """The same row from PostgreSQL: one round trip of a prepared statement (autocommit)."""
        if self._free is None:
            self._free = asyncio.Semaphore(POSTGRES_CONNECTIONS)
        async with self._free:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                cursor = await conn.execute(self.sql, self._params(key_id, campaign_id), prepare=True)
                found = await cursor.fetchone()
            finally:
                if conn.broken or conn.closed:
                    await conn.close()
                else:
                    self._idle.append(conn)
        return tuple(found) if found is not None else None

    async def _connect(self) -> AsyncConnection[Any]:
        conninfo = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return await AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=5)

    def _read_sqlite(self, params: Any) -> tuple[Any, ...] | None:
        # One long-lived autocommit connection that never writes: `PRAGMA data_version` changes exactly
        # when another connection commits, so a row read since then is still the latest committed one.
        if self._sqlite is None:
            self._proxy = self.db.engine.raw_connection()
            self._sqlite = self._proxy.driver_connection
        version = self._sqlite.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version or len(self._seen) > 10_000:
            self._seen.clear()
            self._version = version
        if params not in self._seen:
            row = self._sqlite.execute(self.sql, params).fetchone()
            self._seen[params] = tuple(row) if row is not None else None
        return self._seen[params]

    def close(self) -> None:
        """Give the long-lived SQLite connection back."""
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = self._sqlite = None

    async def aclose(self) -> None:
        """Close every connection, PostgreSQL's too."""
        self.close()
        connections, self._idle = self._idle, []
        for conn in connections:
            await conn.close()
