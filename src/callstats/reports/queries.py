"""SQL of the drill-down and export routes: keyset pages of one campaign's contacts and calls.

Every page reads one index range from its cursor on (db/schema.py: `ix_contacts_campaign_*`,
`ix_calls_campaign_*started`), so a page deep in a 10,000,000-contact campaign costs what the first
one does: no OFFSET, no count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, select, tuple_

from callstats.db.schema import calls, contacts
from callstats.reports.schemas import CALL_FIELDS, CONTACT_FIELDS

AnyRow = Row[*tuple[Any, ...]]
Rows = Sequence[AnyRow]
"""Rows of CONTACT_COLUMNS or CALL_COLUMNS (also readable by name: `row.contact_id`)."""

_CONTACT_SOURCES = {
    "contact_id": contacts.c.id.label("contact_id"),
    "phone": contacts.c.phone,
    "name": contacts.c.name,
    "metadata": contacts.c.metadata,
    "state": contacts.c.state,
    "attempts": contacts.c.attempts,
    "last_outcome": contacts.c.last_outcome,
    "last_call_at": contacts.c.last_call_at,
    "created_at": contacts.c.created_at,
    "erased_at": contacts.c.erased_at,
}
_CALL_SOURCES = {
    "call_id": calls.c.call_id,
    "contact_id": calls.c.contact_id,
    "phone": contacts.c.phone,
    "attempt": calls.c.attempt,
    "started_at": calls.c.started_at,
    "answered_at": calls.c.answered_at,
    "ended_at": calls.c.ended_at,
    "outcome": calls.c.outcome,
    "raw_outcome": calls.c.raw_outcome,
    "duration_seconds": calls.c.duration_seconds,
}
# Selected in the order of the API's fields, which is the order schemas.contact_record and
# schemas.call_record read a row in (a field missing here is a KeyError at import).
CONTACT_COLUMNS = tuple(_CONTACT_SOURCES[name] for name in CONTACT_FIELDS)
CALL_COLUMNS = tuple(_CALL_SOURCES[name] for name in CALL_FIELDS)


@dataclass(frozen=True)
class ContactFilter:
    """Which contacts a list holds: each given field must match (`phone` is a normalized identity)."""

    state: str | None = None
    last_outcome: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class CallFilter:
    """Which calls a list holds: the outcome, and a start in [`from_ms`, `to_ms`) (epoch ms)."""

    outcome: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None


def _serial(conn: Connection) -> None:
    """No parallel workers for this transaction's pages (PostgreSQL): a page reads at most `limit` + 1
    index entries, and starting the workers of a parallel plan, which the planner picks for a large
    table, cost 6 ms of a 1,000-call page that takes 3 ms without them."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")


def contact_page(conn: Connection, campaign_id: str, where: ContactFilter, after_id: int, limit: int) -> Rows:
    """Up to `limit` of the campaign's contacts matching `where`, in id order, with ids above `after_id`."""
    _serial(conn)
    query = select(*CONTACT_COLUMNS).where(contacts.c.campaign_id == campaign_id, contacts.c.id > after_id)
    # Ordered by the whole key of the index the filters name (equal columns first, so still id order):
    # PostgreSQL's planner otherwise walks the primary key and filters, 6,700 rows for a page of 1,000
    # failed contacts, since one campaign's id order looks as cheap as that index's.
    order = [contacts.c.campaign_id]
    for column, value in ((contacts.c.state, where.state), (contacts.c.last_outcome, where.last_outcome)):
        if value is not None:
            query = query.where(column == value)
            order.append(column)
    if where.phone is not None:
        query = query.where(contacts.c.phone == where.phone)
    return conn.execute(query.order_by(*order, contacts.c.id).limit(limit)).all()


def one_contact(conn: Connection, campaign_id: str, contact_id: int) -> AnyRow | None:
    """One contact of the campaign, or None."""
    query = select(*CONTACT_COLUMNS).where(contacts.c.campaign_id == campaign_id, contacts.c.id == contact_id)
    return conn.execute(query).first()


def _calls() -> Select[Any]:
    return select(*CALL_COLUMNS).join_from(calls, contacts, contacts.c.id == calls.c.contact_id)


def contact_calls(conn: Connection, campaign_id: str, contact_id: int) -> Rows:
    """Every call of one contact of the campaign, in attempt order."""
    query = _calls().where(calls.c.campaign_id == campaign_id, calls.c.contact_id == contact_id)
    return conn.execute(query.order_by(calls.c.attempt)).all()


def call_page(
    conn: Connection, campaign_id: str, where: CallFilter, before: tuple[int, str] | None, limit: int
) -> Rows:
    """Up to `limit` of the campaign's calls matching `where`, newest first by (started_at, call_id),
    after the (started_at, call_id) `before` (None: from the newest)."""
    _serial(conn)
    query = _calls().where(calls.c.campaign_id == campaign_id)
    if where.outcome is not None:
        query = query.where(calls.c.outcome == where.outcome)
    if where.from_ms is not None:
        query = query.where(calls.c.started_at >= where.from_ms)
    if where.to_ms is not None:
        query = query.where(calls.c.started_at < where.to_ms)
    if before is not None:
        query = query.where(tuple_(calls.c.started_at, calls.c.call_id) < tuple_(*before))
    query = query.order_by(calls.c.started_at.desc(), calls.c.call_id.desc()).limit(limit)
    return conn.execute(query).all()
