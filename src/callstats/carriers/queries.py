"""SQL of the carrier connections (the callbacks' SQL lives with the webhooks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from callstats.db.schema import carrier_connections

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
