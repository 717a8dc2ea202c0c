"""SQL of the campaigns domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from callstats.db.schema import campaign_counters, campaigns, contacts


def insert_campaign(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new campaign."""
    conn.execute(insert(campaigns).values(**values))


def _with_totals() -> Any:
    totals = (
        select(campaign_counters.c.campaign_id, func.sum(campaign_counters.c.total).label("total_contacts"))
        .group_by(campaign_counters.c.campaign_id)
        .subquery()
    )
    return select(campaigns, func.coalesce(totals.c.total_contacts, 0).label("total_contacts")).outerjoin(
        totals, totals.c.campaign_id == campaigns.c.id
    )


def campaign_row(conn: Connection, account_id: str, campaign_id: str) -> RowMapping | None:
    """One campaign of the account with its contact count, or None."""
    query = _with_totals().where(campaigns.c.id == campaign_id, campaigns.c.account_id == account_id)
    return conn.execute(query).mappings().first()


def campaign_page(
    conn: Connection, account_id: str, after: tuple[int, str] | None, limit: int
) -> Sequence[RowMapping]:
    """Up to `limit` campaigns of the account, newest first, after a (created_at, id) cursor."""
    query = _with_totals().where(campaigns.c.account_id == account_id)
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(
                campaigns.c.created_at < created,
                and_(campaigns.c.created_at == created, campaigns.c.id < last_id),
            )
        )
    query = query.order_by(campaigns.c.created_at.desc(), campaigns.c.id.desc()).limit(limit)
    return conn.execute(query).mappings().all()


def insert_contacts(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert contacts, skipping phones the campaign already has; the number inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(contacts).on_conflict_do_nothing(index_elements=["campaign_id", "phone"])
    inserted = 0
    for start in range(0, len(rows), 2000):
        result = conn.execute(stmt.returning(contacts.c.id), rows[start : start + 2000])
        inserted += len(result.all())
    return inserted
