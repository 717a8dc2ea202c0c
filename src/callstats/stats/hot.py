"""The stats read: one query for the key and the counters, on connections kept for it alone."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import literal_column

from callstats.db.counters import key_and_counters_select
from callstats.db.engine import Database, SqliteChangeProbe, is_unreachable
from callstats.turns import TurnBatches

POSTGRES_CONNECTIONS = 8
Row = tuple[Any, ...]


def batched_sql(db: Database) -> str:
    """PostgreSQL: the stats query for many (key id, campaign id) pairs, each row tagged with its place."""
    one = key_and_counters_select(literal_column("asked.key_id"), literal_column("asked.campaign_id"))
    return (
        "SELECT asked.n, hot.* FROM unnest(%(key_ids)s::text[], %(campaign_ids)s::text[])"
        " WITH ORDINALITY AS asked(key_id, campaign_id, n)"
        f" CROSS JOIN LATERAL ({one.compile(dialect=db.engine.dialect)}) AS hot"
    )


class HotReader:
    """Runs the stats query on raw driver connections: SQLAlchemy compiles it once, not per request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        compiled = key_and_counters_select().compile(dialect=db.engine.dialect)
        self.sql = compiled.string
        self.positional = compiled.positiontup
        self.probe = SqliteChangeProbe(db)  # SQLite: the connection the reads run on, and their freshness
        self._seen: dict[Any, tuple[Any, ...] | None] = {}
        self._version = -1
        # PostgreSQL: reads wait here for the next batch, which runs on one of a few autocommit
        # connections; a pool's per-checkout bookkeeping cost as much CPU as the query itself.
        self.batch_sql = batched_sql(db) if not db.is_sqlite else ""
        # A database found unreachable fails the reads queued behind the batch too: each read waits
        # for one timeout at most, not one per batch ahead of it.
        self.batches: TurnBatches[tuple[str, str], Row | None] = TurnBatches(
            self._read_batch, POSTGRES_CONNECTIONS, is_unreachable
        )
        self._idle: list[AsyncConnection[Any]] = []

    def _params(self, key_id: str, campaign_id: str) -> Any:
        values = {"key_id": key_id, "campaign_id": campaign_id}
        if self.positional is not None:
            return tuple(values[name] for name in self.positional)
        return values

    def read(self, key_id: str, campaign_id: str) -> tuple[Any, ...] | None:
        """(account_id, secret_hash, scope, revoked_at, campaign_name, *summed counters) or None (SQLite)."""
        return self._read_sqlite(self._params(key_id, campaign_id))

    async def aread(self, key_id: str, campaign_id: str) -> Row | None:
        """The same row from PostgreSQL; the reads that arrive in one event-loop turn share one query.

        Each read is answered by a query sent after it arrived, so it sees every commit acknowledged
        before it: batching saves round trips and per-query driver work, never freshness.
        """
        return await self.batches((key_id, campaign_id))

    async def _read_batch(self, pairs: list[tuple[str, str]]) -> list[Row | None]:
        rows = await self._query({"key_ids": [p[0] for p in pairs], "campaign_ids": [p[1] for p in pairs]})
        found = {row[0]: tuple(row[1:]) for row in rows}
        return [found.get(place) for place in range(1, len(pairs) + 1)]

    async def _query(self, params: dict[str, list[str]]) -> list[Row]:
        conn = self._idle.pop() if self._idle else await self._connect()
        watchdog = self.db.watchdog  # a frozen server never answers: hang up after the timeout
        try:
            with watchdog.step(conn) if watchdog is not None else nullcontext():
                cursor = await conn.execute(self.batch_sql, params, prepare=True)
                return await cursor.fetchall()
        finally:
            if conn.broken or conn.closed:
                await conn.close()
            else:
                self._idle.append(conn)

    async def _connect(self) -> AsyncConnection[Any]:
        conninfo = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        # psycopg enforces connect_timeout itself on async connections (whole seconds, at least 2).
        timeout = max(2, math.ceil(self.db.timeout_seconds or 5))
        return await AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=timeout)

    def _read_sqlite(self, params: Any) -> tuple[Any, ...] | None:
        # One long-lived autocommit connection that never writes (the probe's): its data version changes
        # exactly when another connection commits, so a row read since then is still the latest one.
        version = self.probe.version()
        if version != self._version or len(self._seen) > 10_000:
            self._seen.clear()
            self._version = version
        if params not in self._seen:
            row = self.probe.connection.execute(self.sql, params).fetchone()
            self._seen[params] = tuple(row) if row is not None else None
        return self._seen[params]

    def close(self) -> None:
        """Give the long-lived SQLite connection back and hang up PostgreSQL's idle ones (no loop needed)."""
        self.probe.close()
        connections, self._idle = self._idle, []
        for conn in connections:
            conn.pgconn.finish()

    async def aclose(self) -> None:
        """Close every connection, PostgreSQL's too, once the batches under way are answered."""
        self.close()
        await self.batches.drain()
        connections, self._idle = self._idle, []
        for conn in connections:
            await conn.close()
