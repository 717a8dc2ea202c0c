"""SQL of the carrier connections and of the raw callbacks kept with their verdicts.

A callback's row is written inside the write path's transaction (calls.service.Receipt), so it
runs on the driver's connection like the events' statements (db/driver.py), pipelined on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, bindparam, insert, or_, select, update

from callstats.db.driver import Statement
from callstats.db.schema import carrier_callbacks, carrier_connections

_INSERT_CALLBACK = Statement(insert(carrier_callbacks), [c.name for c in carrier_callbacks.c])
# A replay's verdict; an applied callback stays applied (a replay of it only finds duplicates, and two
# replays racing must not turn it into one).
_VERDICT = Statement(
    update(carrier_callbacks).where(
        carrier_callbacks.c.id == bindparam("b_id"),
        carrier_callbacks.c.account_id == bindparam("b_account"),
        or_(
            carrier_callbacks.c.verdict != bindparam("b_applied"),
            bindparam("b_verdict") == bindparam("b_applied"),
        ),
    ),
    ["verdict", "reason", "applied_at"],
)
# What getUnmatchedCallbacks shows of a callback (not its headers: they say nothing the body does not).
_LISTED = (
    carrier_callbacks.c.id,
    carrier_callbacks.c.connection_id,
    carrier_callbacks.c.provider,
    carrier_callbacks.c.campaign_id,
    carrier_callbacks.c.call_id,
    carrier_callbacks.c.received_at,
    carrier_callbacks.c.reason,
    carrier_callbacks.c.query,
    carrier_callbacks.c.body,
)

# Every column but the sealed secret: what listing and answering need.
_SHOWN = (
    carrier_connections.c.id,
    carrier_connections.c.provider,
    carrier_connections.c.name,
    carrier_connections.c.outcome_map,
    carrier_connections.c.created_at,
)


def insert_connection(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new connection (`values` names every column of carrier_connections but deleted_at)."""
    conn.execute(insert(carrier_connections).values(**values))


def live_connections(conn: Connection, account_id: str) -> Sequence[RowMapping]:
    """The account's connections not deleted, newest first (id, provider, name, outcome_map, created_at)."""
    query = (
        select(*_SHOWN)
        .where(carrier_connections.c.account_id == account_id, carrier_connections.c.deleted_at.is_(None))
        .order_by(carrier_connections.c.created_at.desc(), carrier_connections.c.id.desc())
    )
    return conn.execute(query).mappings().all()


def mark_deleted(conn: Connection, account_id: str, connection_id: str, at_ms: int) -> bool:
    """Set deleted_at on one live connection of the account; whether there was one."""
    query = (
        update(carrier_connections)
        .where(
            carrier_connections.c.id == connection_id,
            carrier_connections.c.account_id == account_id,
            carrier_connections.c.deleted_at.is_(None),
        )
        .values(deleted_at=at_ms)
    )
    return bool(conn.execute(query).rowcount)


def webhook_connection(conn: Connection, provider: str, connection_id: str) -> RowMapping | None:
    """A live connection of that provider (account_id, secret_sealed, outcome_map), or None."""
    query = select(
        carrier_connections.c.account_id,
        carrier_connections.c.secret_sealed,
        carrier_connections.c.outcome_map,
    ).where(
        carrier_connections.c.id == connection_id,
        carrier_connections.c.provider == provider,
        carrier_connections.c.deleted_at.is_(None),
    )
    return conn.execute(query).mappings().first()


def insert_callback(conn: Connection, row: dict[str, Any]) -> None:
    """Store one raw callback (`row` names every column of carrier_callbacks)."""
    _INSERT_CALLBACK.executemany(conn, [row])


def update_callback(
    conn: Connection,
    account_id: str,
    callback_id: str,
    verdict: str,
    reason: str | None,
    applied_at: int | None,
) -> None:
    """A replayed callback's new verdict; one already applied keeps its verdict and applied_at."""
    values = {
        "b_id": callback_id,
        "b_account": account_id,
        "b_verdict": verdict,
        "b_applied": "applied",
        "verdict": verdict,
        "reason": reason,
    }
    _VERDICT.executemany(conn, [{**values, "applied_at": applied_at}])


def callback(conn: Connection, account_id: str, callback_id: str) -> RowMapping | None:
    """One of the account's stored callbacks (every column), or None."""
    query = select(carrier_callbacks).where(
        carrier_callbacks.c.id == callback_id, carrier_callbacks.c.account_id == account_id
    )
    return conn.execute(query).mappings().first()


def unmatched_page(
    conn: Connection, account_id: str, connection_id: str | None, limit: int, after: tuple[int, str] | None
) -> Sequence[RowMapping]:
    """Up to `limit` of the account's unmatched callbacks (of one connection, or all), newest first,
    after the keyset position `after` (received_at, id) when given."""
    table = carrier_callbacks.c
    query = select(*_LISTED).where(table.account_id == account_id, table.verdict == "unmatched")
    if connection_id is not None:
        query = query.where(table.connection_id == connection_id)
    if after is not None:
        received_at, callback_id = after
        query = query.where(
            or_(
                table.received_at < received_at,
                and_(table.received_at == received_at, table.id < callback_id),
            )
        )
    return (
        conn.execute(query.order_by(table.received_at.desc(), table.id.desc()).limit(limit)).mappings().all()
    )
