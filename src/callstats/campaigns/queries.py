"""SQL of the campaigns domain."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, insert, or_, select, text

from callstats.db import counters
from callstats.db.schema import campaigns, contacts


def insert_campaign(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new campaign."""
    conn.execute(insert(campaigns).values(**values))


def _with_totals() -> Any:
    """The campaigns, each with its contact count (total_contacts)."""
    return select(campaigns, counters.contacts_total().label("total_contacts"))


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


CONTACT_COLUMNS = (
    "campaign_id", "account_id", "phone", "name", "metadata", "state", "attempts",
    "live_call_id", "last_outcome", "finalized_at", "created_at",
)  # fmt: skip
_PG_TYPES = ("text", "text", "text", "text", "text", "text", "int", "text", "text", "bigint", "bigint")
_phone = itemgetter(CONTACT_COLUMNS.index("phone"))
_TYPED = tuple(zip(CONTACT_COLUMNS, _PG_TYPES, strict=True))
# One statement per chunk whatever its size: rows travel as one array per column, and the phones that a
# concurrent request inserted first are skipped and not counted.
_PG_INSERT = text(
    f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _TYPED)}) "
    "ON CONFLICT (campaign_id, phone) DO NOTHING RETURNING phone"
)


# SQLite: phones the campaign already holds are skipped by the unique key and left out of rowcount.
_SQLITE_INSERT = (
    f"INSERT OR IGNORE INTO contacts ({', '.join(CONTACT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(CONTACT_COLUMNS))})"
)


def insert_contacts(conn: Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """Insert contacts (tuples in CONTACT_COLUMNS order) in phone order, skipping phones the campaign holds.

    Returns the phones skipped because the campaign already held them (a concurrent request's
    included); rows reach the driver as they are, without per-row parameter processing.
    """
    rows = sorted(rows, key=_phone)
    if not rows:
        return set()
    if conn.dialect.name != "postgresql":
        return _sqlite_insert(conn, rows)
    inserted: set[str] = set()
    for start in range(0, len(rows), 5000):
        columns = zip(*rows[start : start + 5000], strict=True)
        arrays = dict(zip(CONTACT_COLUMNS, (list(values) for values in columns), strict=True))
        inserted.update(conn.execute(_PG_INSERT, arrays).scalars())
    return {_phone(row) for row in rows} - inserted


def _sqlite_insert(conn: Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """insert_contacts on SQLite: the skipped phones are those the campaign held before (lower ids).

    Writes are serialized (BEGIN IMMEDIATE) and new rowids are above every existing one, so a
    contact of these phones with an id up to the maximum before the insert was already there.
    """
    before = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM contacts").scalar_one()
    if int(conn.exec_driver_sql(_SQLITE_INSERT, rows).rowcount) == len(rows):
        return set()
    campaign_id, phones = rows[0][0], [_phone(row) for row in rows]
    held: set[str] = set()
    for start in range(0, len(phones), 500):
        query = select(contacts.c.phone).where(
            contacts.c.campaign_id == campaign_id,
            contacts.c.id <= before,
            contacts.c.phone.in_(phones[start : start + 500]),
        )
        held.update(conn.execute(query).scalars())
    return held


def campaign_region(conn: Connection, account_id: str, campaign_id: str) -> str | None:
    """The default region of one campaign of the account, or None when the account has no such campaign."""
    query = select(campaigns.c.default_region).where(
        campaigns.c.id == campaign_id, campaigns.c.account_id == account_id
    )
    region: str | None = conn.execute(query).scalar_one_or_none()
    return region
