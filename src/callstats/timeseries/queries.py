"""SQL of the time-series domain that is not counter SQL (the minutes are read in db/counters.py)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from callstats.db.schema import campaigns


def created_at(conn: Connection, account_id: str, campaign_id: str) -> int | None:
    """When the account's campaign was created (epoch ms), or None when it has no such campaign."""
    created = conn.execute(
        select(campaigns.c.created_at).where(
            campaigns.c.id == campaign_id, campaigns.c.account_id == account_id
        )
    ).scalar()
    return None if created is None else int(created)
