"""The stats read: one query for the key and the counters, on connections kept for it alone."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import literal_column

from callstats.db.engine import Database
from callstats.stats.counters import key_and_counters_select

POSTGRES_CONNECTIONS = 8
Row = tuple[Any, ...]
Waiting = tuple[str, str, "asyncio.Future[Row | None]"]


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
        self._proxy: Any = None
        self._sqlite: Any = None
        self._seen: dict[Any, tuple[Any, ...] | None] = {}
        self._version = -1
        # PostgreSQL: reads wait here for the next batch, which runs on one of a few autocommit
        # connections; a pool's per-checkout bookkeeping cost as much CPU as the query itself.
        self.batch_sql = batched_sql(db) if not db.is_sqlite else ""
        self._waiting: list[Waiting] = []
        self._batches = 0
        self._tasks: set[asyncio.Task[None]] = set()
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
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((key_id, campaign_id, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._start_batch)
        return await future

    def _start_batch(self) -> None:
        if not self._waiting or self._batches >= POSTGRES_CONNECTIONS:
            return  # a batch that ends starts the next one
        batch, self._waiting = self._waiting, []
        self._batches += 1
        task = asyncio.ensure_future(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[Waiting]) -> None:
        try:
            rows = await self._query(
                {"key_ids": [b[0] for b in batch], "campaign_ids": [b[1] for b in batch]}
            )
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            found = {row[0]: tuple(row[1:]) for row in rows}
            for place, (_, _, future) in enumerate(batch, start=1):
                if not future.done():
                    future.set_result(found.get(place))
        finally:
            self._batches -= 1
            self._start_batch()

    async def _query(self, params: dict[str, list[str]]) -> list[Row]:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            cursor = await conn.execute(self.batch_sql, params, prepare=True)
            return await cursor.fetchall()
        finally:
            if conn.broken or conn.closed:
                await conn.close()
            else:
                self._idle.append(conn)

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
        """Give the long-lived SQLite connection back and hang up PostgreSQL's idle ones (no loop needed)."""
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = self._sqlite = None
        connections, self._idle = self._idle, []
        for conn in connections:
            conn.pgconn.finish()

    async def aclose(self) -> None:
        """Close every connection, PostgreSQL's too, once the batches under way are answered."""
        self.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        connections, self._idle = self._idle, []
        for conn in connections:
            await conn.close()
