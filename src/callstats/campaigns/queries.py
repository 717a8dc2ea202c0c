"""SQL of the campaigns domain."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)

from callstats.db.schema import calls, campaigns, carrier_callbacks, contacts, metadata


def insert_campaign(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new campaign."""
    conn.execute(insert(campaigns).values(**values))


def campaign_row(conn: Connection, account_id: str, campaign_id: str) -> RowMapping | None:
    """One campaign of the account, or None."""
    query = select(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.account_id == account_id)
    return conn.execute(query).mappings().first()


def campaign_page(
    conn: Connection, account_id: str, after: tuple[int, str] | None, limit: int
) -> Sequence[RowMapping]:
    """Up to `limit` campaigns of the account, newest first, after a (created_at, id) cursor."""
    query = select(campaigns).where(campaigns.c.account_id == account_id)
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


def locked_campaign_region(conn: Connection, account_id: str, campaign_id: str) -> str | None:
    """campaign_region inside a write: the row held (PostgreSQL FOR KEY SHARE) until the commit, so a
    concurrent deleteCampaign waits for the contacts added, or they wait and find no campaign."""
    query = (
        select(campaigns.c.default_region)
        .where(campaigns.c.id == campaign_id, campaigns.c.account_id == account_id)
        .with_for_update(read=True, key_share=True)
    )
    region: str | None = conn.execute(query).scalar_one_or_none()
    return region


def campaign_tables() -> list[Table]:
    """Every table holding rows of one campaign (a `campaign_id` column), contacts first, campaigns aside."""
    held = [t for t in metadata.sorted_tables if "campaign_id" in t.c and t is not contacts]
    return [contacts, *held]


def delete_campaign_rows(conn: Connection, account_id: str, campaign_id: str) -> bool:
    """Delete the account's campaign and every row stored for it, in every table; False when the account
    has no such campaign (nothing deleted).

    The campaign row is locked first (PostgreSQL), then its contacts deleted: the write path locks the
    contacts its events touch, so an event transaction in flight commits before the rest is deleted,
    and a later one finds no contact. Each delete filters by account too where the table has the
    column (its primary key or index starts with it).
    """
    found = conn.execute(
        select(campaigns.c.id)
        .where(campaigns.c.id == campaign_id, campaigns.c.account_id == account_id)
        .with_for_update()
    ).scalar_one_or_none()
    if found is None:
        return False
    for table in campaign_tables():
        where = [table.c.campaign_id == campaign_id]
        if "account_id" in table.c:
            where.append(table.c.account_id == account_id)
        conn.execute(delete(table).where(*where))
    conn.execute(delete(campaigns).where(campaigns.c.id == campaign_id))
    return True


def locked_contact(conn: Connection, account_id: str, campaign_id: str, contact_id: int) -> RowMapping | None:
    """One contact of the account's campaign, locked until the commit (PostgreSQL), or None."""
    query = (
        select(contacts.c.id, contacts.c.phone, contacts.c.erased_at)
        .where(
            contacts.c.id == contact_id,
            contacts.c.campaign_id == campaign_id,
            contacts.c.account_id == account_id,
        )
        .with_for_update()
    )
    return conn.execute(query).mappings().first()


def erase_contact(conn: Connection, contact_id: int, at_ms: int) -> None:
    """Blank a contact's phone, name and metadata and mark it erased at `at_ms` (epoch ms)."""
    conn.execute(
        update(contacts)
        .where(contacts.c.id == contact_id)
        .values(phone=None, name=None, metadata=None, erased_at=at_ms)
    )


def delete_contact_callbacks(
    conn: Connection, account_id: str, campaign_id: str, contact_id: int, digits: str | None
) -> int:
    """Delete the stored carrier callbacks of one contact: those of its calls, and (given the digits of
    its number) those whose raw query or body holds them, among the campaign's callbacks and those that
    named no campaign. The number of callbacks deleted."""
    cb = carrier_callbacks.c
    its_calls = select(calls.c.call_id).where(
        calls.c.account_id == account_id, calls.c.campaign_id == campaign_id, calls.c.contact_id == contact_id
    )
    matches: list[ColumnElement[bool]] = [
        cb.call_id.in_(its_calls)
    ]  # a call id names one call of the account
    if digits:
        pattern = f"%{digits}%"
        matches.append(or_(cb.query.like(pattern), cb.body.like(pattern)))
    query = delete(carrier_callbacks).where(
        cb.account_id == account_id,
        or_(cb.campaign_id == campaign_id, cb.campaign_id.is_(None)),
        or_(*matches),
    )
    return int(conn.execute(query).rowcount)
