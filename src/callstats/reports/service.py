"""Drill-down and export use cases: pages of a campaign's contacts and calls, one contact, and exports
streamed from one snapshot.

A contact's stored `state` is the state the stats count (`calls_failed` is the number of contacts in
state failed) and its `last_outcome` the outcome call_status_breakdown counts it under (its most
recent finished call's, kept while a retry is pending or live: core/lifecycle.py moves both with
the counters in one transaction), so a filtered list holds exactly the figure's contacts.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection

from callstats.campaigns.queries import campaign_region
from callstats.core.phones import InvalidPhone, normalize
from callstats.db.engine import Database
from callstats.errors import CampaignNotFound, NotFound, ValidationFailed
from callstats.pages import decode_cursor, encode_cursor
from callstats.reports import exports, queries
from callstats.reports.queries import CallFilter, ContactFilter, Rows
from callstats.reports.schemas import (
    CALL_FIELDS,
    CONTACT_FIELDS,
    ExportFormat,
    call_record,
    call_values,
    contact_record,
    contact_values,
)

EXPORT_CHUNK_ROWS = 5000  # rows per read of an export: a few MB of memory whatever the campaign's size

K = TypeVar("K")


@dataclass(frozen=True)
class Export:
    """An export ready to stream: its file name, media type and bytes (a snapshot held open until
    `chunks` is exhausted or closed)."""

    file_name: str
    media_type: str
    chunks: Iterator[bytes]


def _checked_filter(
    conn: Connection, account_id: str, campaign_id: str, where: ContactFilter
) -> ContactFilter:
    """`where` with its phone normalized as addContacts does (the campaign's default region); raises
    CampaignNotFound for no such campaign of the account, ValidationFailed for a phone never accepted."""
    region = campaign_region(conn, account_id, campaign_id)
    if region is None:
        raise CampaignNotFound()
    if where.phone is None:
        return where
    try:
        return dataclasses.replace(where, phone=normalize(where.phone, region))
    except InvalidPhone as exc:
        raise ValidationFailed(f"phone: {exc}") from None


def _check_campaign(conn: Connection, account_id: str, campaign_id: str) -> None:
    if campaign_region(conn, account_id, campaign_id) is None:
        raise CampaignNotFound()


def _contact_after(cursor: str | None) -> int:
    return decode_cursor(cursor)[0] if cursor else 0


def _call_before(cursor: str | None) -> tuple[int, str] | None:
    return decode_cursor(cursor) if cursor else None


def _page(
    rows: Rows, limit: int, record: Callable[[Any], dict[str, Any]], cursor_of: Callable[[Any], str]
) -> tuple[list[dict[str, Any]], str | None]:
    """The first `limit` of `rows` (read `limit + 1`) as records, and the next page's cursor."""
    return [record(row) for row in rows[:limit]], cursor_of(rows[limit - 1]) if len(rows) > limit else None


def contacts_page(
    db: Database, account_id: str, campaign_id: str, where: ContactFilter, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the campaign's contacts matching `where`, in id order (contact_record dicts), and the
    next page's cursor (None on the last). Raises CampaignNotFound, ValidationFailed (phone, cursor)."""
    after = _contact_after(cursor)
    with db.read() as conn:
        checked = _checked_filter(conn, account_id, campaign_id, where)
        rows = queries.contact_page(conn, campaign_id, checked, after, limit + 1)
    return _page(rows, limit, contact_record, lambda row: encode_cursor(row.contact_id, ""))


def contact_detail(db: Database, account_id: str, campaign_id: str, contact_id: int) -> dict[str, Any]:
    """One contact (contact_record) with `calls`, its call_record dicts in attempt order. Raises
    CampaignNotFound, NotFound (no such contact in the campaign)."""
    with db.read() as conn:
        _check_campaign(conn, account_id, campaign_id)
        row = queries.one_contact(conn, campaign_id, contact_id)
        if row is None:
            raise NotFound("Contact not found")
        calls = queries.contact_calls(conn, campaign_id, contact_id)
    return {**contact_record(row), "calls": [call_record(call) for call in calls]}


def calls_page(
    db: Database, account_id: str, campaign_id: str, where: CallFilter, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the campaign's calls matching `where`, newest first (call_record dicts), and the next
    page's cursor. Raises CampaignNotFound, ValidationFailed (cursor)."""
    before = _call_before(cursor)
    with db.read() as conn:
        _check_campaign(conn, account_id, campaign_id)
        rows = queries.call_page(conn, campaign_id, where, before, limit + 1)
    return _page(rows, limit, call_record, lambda row: encode_cursor(row.started_at, row.call_id))


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """One read transaction that sees the database as it was at its first read, however long it lasts:
    PostgreSQL's REPEATABLE READ READ ONLY; on SQLite a deferred transaction (WAL: writers go on)."""
    with db.read() as conn:
        if not db.is_sqlite:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def _streamed(
    db: Database,
    opened: Callable[[Connection], Callable[[Connection, K | None, int], Rows]],
    key_of: Callable[[Any], K],
    values: Callable[[Any], tuple[Any, ...]],
    fields: Sequence[str],
    fmt: ExportFormat,
    chunk_rows: int,
) -> Iterator[bytes]:
    """The export's bytes: `opened` checks the request in the snapshot and returns its page reader;
    then the file's start, then chunks of `chunk_rows` rows read by keyset in that same snapshot."""
    encode = exports.encoder(fmt, fields)
    with snapshot(db) as conn:
        page = opened(conn)
        yield exports.file_start(fmt, fields)
        after: K | None = None
        while True:
            rows = page(conn, after, chunk_rows)
            if rows:
                yield encode(map(values, rows))
            if len(rows) < chunk_rows:
                return
            after = key_of(rows[-1])


def _ready(chunks: Iterator[bytes], campaign_id: str, kind: str, fmt: ExportFormat) -> Export:
    """Run the export up to its first bytes (the checks raise here, before any answer is sent)."""
    first = next(chunks)
    return Export(
        exports.file_name(campaign_id, kind, fmt), exports.MEDIA_TYPES[fmt], itertools.chain([first], chunks)
    )


def export_contacts(
    db: Database,
    account_id: str,
    campaign_id: str,
    where: ContactFilter,
    fmt: ExportFormat,
    chunk_rows: int = EXPORT_CHUNK_ROWS,
) -> Export:
    """The campaign's contacts matching `where`, as getContacts lists them, from one snapshot. Raises
    CampaignNotFound, ValidationFailed (phone) before any byte is produced."""

    def opened(conn: Connection) -> Callable[[Connection, int | None, int], Rows]:
        checked = _checked_filter(conn, account_id, campaign_id, where)
        return lambda c, after, limit: queries.contact_page(c, campaign_id, checked, after or 0, limit)

    chunks = _streamed(
        db, opened, lambda row: int(row.contact_id), contact_values, CONTACT_FIELDS, fmt, chunk_rows
    )
    return _ready(chunks, campaign_id, "contacts", fmt)


def export_calls(
    db: Database,
    account_id: str,
    campaign_id: str,
    where: CallFilter,
    fmt: ExportFormat,
    chunk_rows: int = EXPORT_CHUNK_ROWS,
) -> Export:
    """The campaign's calls matching `where`, as getCalls lists them (newest first), from one snapshot.
    Raises CampaignNotFound before any byte is produced."""

    def opened(conn: Connection) -> Callable[[Connection, tuple[int, str] | None, int], Rows]:
        _check_campaign(conn, account_id, campaign_id)
        return lambda c, before, limit: queries.call_page(c, campaign_id, where, before, limit)

    chunks = _streamed(
        db,
        opened,
        lambda row: (int(row.started_at), str(row.call_id)),
        call_values,
        CALL_FIELDS,
        fmt,
        chunk_rows,
    )
    return _ready(chunks, campaign_id, "calls", fmt)
