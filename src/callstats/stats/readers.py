"""The stats read, one query for the key and the counters: one reader per backend, behind StatsReader.

Role: the speed-shaped SQL runners of getCampaignStats (the query itself is db/counters.py's
`key_and_counters_select`). Each reader compiles the query once, not per request, and saves:

- SqliteStatsReader: the thread hop (a primary-key read takes microseconds: cheaper inline on the
  event loop than in a worker thread) and repeated reads (rows are kept until `PRAGMA data_version`
  says another connection committed).
- PostgresStatsReader: round trips and per-query driver work (the reads of one event-loop turn share
  one prepared query, TurnBatches) and the pool's per-checkout bookkeeping, which cost as much CPU as
  the query itself (a few raw autocommit connections of its own, POSTGRES_CONNECTIONS at most).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Protocol

from psycopg import AsyncConnection

from callstats.db.counters import KeyAndCounters, batched_stats_sql, key_and_counters_select
from callstats.db.engine import Database, SqliteChangeProbe, is_unreachable
from callstats.turns import TurnBatches

POSTGRES_CONNECTIONS = 8
SQLITE_ROWS_KEPT = 10_000  # rows kept between two commits, at most (a bounded memory)
Pair = tuple[str, str]  # (key id, campaign id)


class StatsReader(Protocol):
    """Reads the KeyAndCounters row of a (key id, campaign id); each read sees every commit acknowledged
    before it."""

    async def read(self, key_id: str, campaign_id: str) -> KeyAndCounters | None:
        """The row for this key id and campaign id; None when no key has this id."""

    async def aclose(self) -> None:
        """Release the reader's connections (a later read opens new ones)."""


class SqliteStatsReader:
    """SQLite: reads inline on one long-lived connection that never writes (the change probe's)."""

    def __init__(self, db: Database) -> None:
        compiled = key_and_counters_select().compile(dialect=db.engine.dialect)
        self.sql = compiled.string
        self.positional = compiled.positiontup
        self.probe = SqliteChangeProbe(db)
        self._seen: dict[Any, KeyAndCounters | None] = {}
        self._version = -1

    async def read(self, key_id: str, campaign_id: str) -> KeyAndCounters | None:
        """The row, from memory when no connection committed since it was read (no thread hop)."""
        params = self._params(key_id, campaign_id)
        # The probe's data version changes exactly when another connection commits.
        version = self.probe.version()
        if version != self._version or len(self._seen) > SQLITE_ROWS_KEPT:
            self._seen.clear()
            self._version = version
        if params not in self._seen:
            raw = self.probe.connection.execute(self.sql, params).fetchone()
            self._seen[params] = KeyAndCounters(*raw) if raw is not None else None
        return self._seen[params]

    def _params(self, key_id: str, campaign_id: str) -> Any:
        values = {"key_id": key_id, "campaign_id": campaign_id}
        if self.positional is not None:
            return tuple(values[name] for name in self.positional)
        return values

    async def aclose(self) -> None:
        """Give the long-lived connection back."""
        self.probe.close()


def _placed(place: int, *hot: Any) -> tuple[int, KeyAndCounters]:
    """A batched row: its place among the pairs asked (from 1), and the stats row."""
    return place, KeyAndCounters(*hot)


class PostgresStatsReader:
    """PostgreSQL: the reads of one event-loop turn share one query, on a few raw connections of its own."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.batch_sql = batched_stats_sql(db)
        # A database found unreachable fails the reads queued behind the batch too: each read waits
        # for one timeout at most, not one per batch ahead of it.
        self.batches: TurnBatches[Pair, KeyAndCounters | None] = TurnBatches(
            self._read_batch, POSTGRES_CONNECTIONS, is_unreachable
        )
        self._idle: list[AsyncConnection[Any]] = []

    async def read(self, key_id: str, campaign_id: str) -> KeyAndCounters | None:
        """The row, from the next batch.

        Each read is answered by a query sent after it arrived, so it sees every commit acknowledged
        before it: batching saves round trips and per-query driver work, never freshness.
        """
        return await self.batches((key_id, campaign_id))

    async def _read_batch(self, pairs: list[Pair]) -> list[KeyAndCounters | None]:
        key_ids, campaign_ids = [key_id for key_id, _ in pairs], [campaign_id for _, campaign_id in pairs]
        rows = await self._query({"key_ids": key_ids, "campaign_ids": campaign_ids})
        found = dict(_placed(*row) for row in rows)
        return [found.get(place) for place in range(1, len(pairs) + 1)]

    async def _query(self, params: dict[str, list[str]]) -> list[tuple[Any, ...]]:
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

    async def aclose(self) -> None:
        """Close every connection once the batches under way are answered."""
        await self.batches.drain()
        connections, self._idle = self._idle, []
        for conn in connections:
            await conn.close()


def stats_reader(db: Database) -> StatsReader:
    """The reader for the database's backend."""
    return SqliteStatsReader(db) if db.is_sqlite else PostgresStatsReader(db)
