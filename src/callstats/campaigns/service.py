"""Campaign use cases: create, read, list, add contacts."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, RowMapping

from callstats.bodies import nesting_depth
from callstats.campaigns import queries
from callstats.campaigns.schemas import (
    AddContactsResult,
    Campaign,
    CampaignSummary,
    ContactRow,
    CreateCampaign,
    DuplicateRow,
    InvalidRow,
)
from callstats.clock import now_ms
from callstats.core.counters import CampaignCreated, ContactsAdded, moved
from callstats.core.lifecycle import PENDING
from callstats.core.phones import InvalidPhone, normalize
from callstats.db import counters
from callstats.db.engine import Database
from callstats.errors import CampaignNotFound
from callstats.pages import decode_cursor, encode_cursor
from callstats.stats.response import iso_utc, success_rate


def _campaign(row: RowMapping) -> Campaign:
    return Campaign(
        campaign_id=row["id"],
        name=row["name"],
        max_attempts=row["max_attempts"],
        retry_on=[o for o in row["retry_on"].split(",") if o],
        default_region=row["default_region"],
        total_contacts=int(row["total_contacts"]),
        created_at=iso_utc(row["created_at"]) or "",
    )


def create_campaign(db: Database, account_id: str, body: CreateCampaign, server_region: str) -> Campaign:
    """Store a new campaign for the account; its region is the body's, or else `server_region`."""
    campaign_id = str(uuid.uuid4())
    values = {
        "id": campaign_id,
        "account_id": account_id,
        "name": body.name,
        "max_attempts": body.max_attempts,
        "retry_on": ",".join(body.retry_on),
        "default_region": body.default_region or server_region,
        "created_at": now_ms(),
    }

    def work(conn: Connection) -> None:
        queries.insert_campaign(conn, values)
        counters.write(conn, account_id, campaign_id, 0, moved(CampaignCreated()))

    db.write(work)
    return get_campaign(db, account_id, campaign_id)


def get_campaign(db: Database, account_id: str, campaign_id: str) -> Campaign:
    """One campaign of the account, or 404."""
    with db.read() as conn:
        row = queries.campaign_row(conn, account_id, campaign_id)
    if row is None:
        raise CampaignNotFound()
    return _campaign(row)


def list_campaigns(
    db: Database, account_id: str, cursor: str | None, limit: int
) -> tuple[list[Campaign], str | None]:
    """A page of the account's campaigns, newest first, and the cursor of the next page."""
    after = decode_cursor(cursor) if cursor else None
    with db.read() as conn:
        rows = queries.campaign_page(conn, account_id, after, limit + 1)
    page = [_campaign(row) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, encode_cursor(last["created_at"], last["id"]) if last is not None else None


def _checked_rows(
    rows: list[ContactRow], region: str
) -> tuple[list[tuple[ContactRow, str]], list[InvalidRow]]:
    """Valid rows with their identity (E.164 plus any extension), and the invalid ones with reasons."""
    valid: list[tuple[ContactRow, str]] = []
    invalid: list[InvalidRow] = []
    for row in rows:
        try:
            if row.problem:
                raise InvalidPhone(row.problem)
            phone = normalize(row.phone, region)
            _check_extras(row)
        except InvalidPhone as exc:
            invalid.append(InvalidRow(row=row.row, phone=sent_text(row.phone), reason=str(exc)))
            continue
        valid.append((row, phone))
    return valid, invalid


def sent_text(value: object) -> str | None:
    """The phone value a row sent, as text: a string as it is, any other JSON value as JSON, None as None."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)[:200]


MAX_METADATA_DEPTH = 32  # a contact's metadata is a few fields; deeper is a mistake or an attack


def _check_extras(row: ContactRow) -> None:
    """InvalidPhone when a row's name or metadata cannot be stored (not text, too long); a NUL in
    either was found when the body was read (the row's `problem`)."""
    if row.name is not None and (not isinstance(row.name, str) or len(row.name) > 200):
        raise InvalidPhone("name must be a string of at most 200 characters")
    if row.metadata is not None:
        if not isinstance(row.metadata, dict):
            raise InvalidPhone("metadata must be an object")
        if nesting_depth(row.metadata) > MAX_METADATA_DEPTH:
            raise InvalidPhone(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")


def campaign_region(db: Database, account_id: str, campaign_id: str) -> str:
    """The default region of one campaign of the account, or 404."""
    with db.read() as conn:
        region = queries.campaign_region(conn, account_id, campaign_id)
    if region is None:
        raise CampaignNotFound()
    return region


def _first_rows(
    valid: list[tuple[ContactRow, str]],
) -> tuple[dict[str, ContactRow], list[DuplicateRow]]:
    """Each identity's first row, and the later rows that repeat one (with the row they repeat)."""
    first: dict[str, ContactRow] = {}
    repeats: list[DuplicateRow] = []
    for row, phone in valid:
        earlier = first.setdefault(phone, row)
        if earlier is not row:
            repeats.append(DuplicateRow(row=row.row, phone=phone, earlier_row=earlier.row))
    return first, repeats


def add_contacts(
    db: Database, account_id: str, campaign_id: str, rows: list[ContactRow], region: str | None = None
) -> AddContactsResult:
    """Validate, normalize and add contacts; duplicates (in the request or the campaign) are skipped.

    Phones without +country are read in `region`, or else the campaign's default region. Each
    duplicate row is listed with the identity it repeats and the earlier row of this request (null
    when the campaign already held it). Raises CampaignNotFound.
    """
    if region is None:
        region = campaign_region(db, account_id, campaign_id)
    valid, invalid = _checked_rows(rows, region)
    first, duplicates = _first_rows(valid)
    created = now_ms()
    values = [_contact_values(row, phone, campaign_id, account_id, created) for phone, row in first.items()]

    def work(conn: Connection) -> set[str]:
        if queries.campaign_region(conn, account_id, campaign_id) is None:
            raise CampaignNotFound()
        held = queries.insert_contacts(conn, values)
        inserted = len(values) - len(held)
        counters.write(conn, account_id, campaign_id, db.pick_slot(), moved(ContactsAdded(inserted)))
        return held

    held = db.write(work)
    duplicates += [DuplicateRow(row=first[phone].row, phone=phone, earlier_row=None) for phone in held]
    return AddContactsResult(
        received=len(rows),
        accepted=len(values) - len(held),
        duplicate=len(duplicates),
        invalid=len(invalid),
        errors=invalid,
        duplicates=sorted(duplicates, key=lambda duplicate: duplicate.row),
    )


def _contact_values(
    row: ContactRow, phone: str, campaign_id: str, account_id: str, created: int
) -> tuple[Any, ...]:
    """A new contact's row, in queries.CONTACT_COLUMNS order."""
    metadata = json.dumps(row.metadata) if row.metadata is not None else None
    return (campaign_id, account_id, phone, row.name, metadata, PENDING, 0, None, None, None, created)


def summaries(db: Database, account_id: str, campaign_ids: list[str]) -> list[CampaignSummary]:
    """getCampaignSummaries: the summaries of the account's campaigns among `campaign_ids`, in their order
    (ids of no campaign of the account are left out). Raises DatabaseTimeout/unavailable as every read."""
    with db.read() as conn:
        rows = counters.summaries(conn, account_id, campaign_ids)
    found = []
    for campaign_id in campaign_ids:
        row = rows.get(campaign_id)
        if row is None:
            continue
        completed, failed = int(row["completed"]), int(row["failed"])
        found.append(
            CampaignSummary(
                campaign_id=campaign_id,
                total_contacts=int(row["total"]),
                calls_completed=completed,
                calls_failed=failed,
                calls_in_progress=int(row["in_progress"]),
                calls_pending=int(row["pending"]),
                success_rate=success_rate(completed, failed),
            )
        )
    return found
