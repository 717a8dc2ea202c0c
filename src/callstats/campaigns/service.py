"""Campaign use cases: create, read, list, add contacts, delete a campaign, forget a contact."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, RowMapping

from callstats.alerts.outbox import counters_changed
from callstats.bodies import nesting_depth
from callstats.campaigns import queries
from callstats.campaigns.schemas import (
    AddContactsResult,
    Campaign,
    CampaignSummary,
    ContactRow,
    CreateCampaign,
    DeletedCampaign,
    DuplicateRow,
    ForgottenContact,
    InvalidRow,
)
from callstats.clock import now_ms
from callstats.core.counters import CampaignCreated, ContactsAdded, moved
from callstats.core.lifecycle import PENDING
from callstats.core.phones import InvalidPhone, normalize
from callstats.core.status import CampaignStatus, Progress, campaign_status
from callstats.db import counters
from callstats.db.engine import Database
from callstats.errors import CampaignNotFound, ContactNotFound
from callstats.pages import decode_cursor, encode_cursor
from callstats.stats.response import iso_utc, success_rate

_NO_COUNTERS = Progress(0, 0, 0, None, None, None)
SCAN_BATCH = 200  # campaigns read at a time while a status filter looks for a page's worth


class Listed(NamedTuple):
    """A campaign row with its counters' figures and its status now."""

    row: RowMapping
    progress: Progress
    status: CampaignStatus

    def shown(self) -> Campaign:
        """The campaign as the API shows it."""
        row, progress = self.row, self.progress
        return Campaign(
            campaign_id=row["id"],
            name=row["name"],
            max_attempts=row["max_attempts"],
            retry_on=[o for o in row["retry_on"].split(",") if o],
            default_region=row["default_region"],
            total_contacts=progress.total,
            created_at=iso_utc(row["created_at"]) or "",
            stall_after_minutes=row["stall_after_minutes"],
            status=self.status,
            last_event_at=iso_utc(progress.last_event_at),
        )


def _listed(conn: Connection, account_id: str, rows: Sequence[RowMapping], now: int) -> list[Listed]:
    """The campaigns of `rows` with their counters' figures (one query for all) and statuses at `now`,
    in the same order."""
    found = counters.summaries(conn, account_id, [row["id"] for row in rows])
    listed = []
    for row in rows:
        progress = counters.progress(found[row["id"]]) if row["id"] in found else _NO_COUNTERS
        listed.append(Listed(row, progress, campaign_status(progress, now, row["stall_after_minutes"])))
    return listed


def create_campaign(
    db: Database, account_id: str, body: CreateCampaign, server_region: str, now: int
) -> Campaign:
    """Store a new campaign for the account; its region is the body's, or else `server_region`. `now`
    is the server's clock (epoch ms)."""
    campaign_id = str(uuid.uuid4())
    values = {
        "id": campaign_id,
        "account_id": account_id,
        "name": body.name,
        "max_attempts": body.max_attempts,
        "retry_on": ",".join(body.retry_on),
        "default_region": body.default_region or server_region,
        "stall_after_minutes": body.stall_after_minutes,
        "created_at": now,
    }

    def work(conn: Connection) -> None:
        queries.insert_campaign(conn, values)
        counters.write(conn, account_id, campaign_id, 0, moved(CampaignCreated()))

    db.write(work)
    return get_campaign(db, account_id, campaign_id, now)


def get_campaign(db: Database, account_id: str, campaign_id: str, now: int) -> Campaign:
    """One campaign of the account with its status at `now` (epoch ms), or CampaignNotFound (404)."""
    with db.read() as conn:
        row = queries.campaign_row(conn, account_id, campaign_id)
        if row is None:
            raise CampaignNotFound()
        return _listed(conn, account_id, [row], now)[0].shown()


def list_campaigns(
    db: Database,
    account_id: str,
    cursor: str | None,
    limit: int,
    now: int,
    status: CampaignStatus | None = None,
) -> tuple[list[Campaign], str | None]:
    """A page of the account's campaigns (those in `status` at `now` when given), newest first, and the
    cursor of the next page (None on the last).

    With a status, campaigns are read SCAN_BATCH at a time, newest first, until the page is full or the
    account has no more: the cursor names the last campaign shown, so the next page starts after it
    whatever the statuses of the campaigns skipped. Raises ValidationFailed (400) for a bad cursor.
    """
    after = decode_cursor(cursor) if cursor else None
    batch = max(limit + 1, SCAN_BATCH) if status is not None else limit + 1
    matching: list[Listed] = []
    with db.read() as conn:
        while len(matching) <= limit:
            rows = queries.campaign_page(conn, account_id, after, batch)
            matching += [c for c in _listed(conn, account_id, rows, now) if status in (None, c.status)]
            if len(rows) < batch:
                break
            after = (rows[-1]["created_at"], rows[-1]["id"])
    last = matching[limit - 1].row if len(matching) > limit else None
    page = [listed.shown() for listed in matching[:limit]]
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
        if queries.locked_campaign_region(conn, account_id, campaign_id) is None:
            raise CampaignNotFound()
        held = queries.insert_contacts(conn, values)
        inserted = len(values) - len(held)
        counters.write(conn, account_id, campaign_id, db.pick_slot(), moved(ContactsAdded(inserted)))
        if inserted:  # a campaign completed is not any more; rates over the total move
            counters_changed(conn, {account_id: [campaign_id]}, created)
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


def delete_campaign(db: Database, account_id: str, campaign_id: str) -> DeletedCampaign:
    """deleteCampaign: the campaign and every row stored for it (contacts, calls, events, counters,
    histograms, minutes, raw outcomes, carrier callbacks) deleted in one transaction.

    Raises CampaignNotFound (404) when the account has no such campaign, a deleted one included.
    """
    if not db.write(lambda conn: queries.delete_campaign_rows(conn, account_id, campaign_id)):
        raise CampaignNotFound()
    return DeletedCampaign(campaign_id=campaign_id)


def forget_contact(
    db: Database, account_id: str, campaign_id: str, contact_id: int, now: int
) -> ForgottenContact:
    """forgetContact: the contact's phone, name and metadata erased (its state, attempts and calls kept,
    so every statistic stays as it was) and its stored carrier callbacks deleted, in one transaction.

    Safe to repeat: an erased contact keeps its first `erased_at`; a repeat deletes any callback of its
    calls stored since. `now` is the server's clock (epoch ms). Raises ContactNotFound (404).
    """

    def work(conn: Connection) -> ForgottenContact:
        contact = queries.locked_contact(conn, account_id, campaign_id, contact_id)
        if contact is None:
            raise ContactNotFound()
        erased_at = contact["erased_at"]
        if erased_at is None:
            erased_at = now
            queries.erase_contact(conn, contact_id, now)
        digits = contact["phone"].split(";")[0].lstrip("+") if contact["phone"] else None
        deleted = queries.delete_contact_callbacks(conn, account_id, campaign_id, contact_id, digits)
        return ForgottenContact(
            campaign_id=campaign_id,
            contact_id=contact_id,
            erased_at=iso_utc(erased_at) or "",
            callbacks_deleted=deleted,
        )

    return db.write(work)
