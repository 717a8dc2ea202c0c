"""HTTP routes of the drill-down (getContacts, getContact, getCalls) and the exports (exportContacts,
exportCalls). docs/api.md has their examples."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from anyio.to_thread import run_sync
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response, StreamingResponse

from callstats.accounts.deps import ReadKey
from callstats.bodies import WholeNumber
from callstats.clock import epoch_ms
from callstats.db.deps import Db
from callstats.errors import ValidationFailed
from callstats.ids import CampaignId
from callstats.pages import RowPageSize
from callstats.reports import service
from callstats.reports.queries import CallFilter, ContactFilter
from callstats.reports.schemas import (
    CallPage,
    ContactEnvelope,
    ContactPage,
    ContactState,
    ExportFormat,
    Outcome,
)

router = APIRouter(tags=["reports"])

StateParam = Annotated[ContactState | None, Query(description="only contacts in this state")]
OutcomeParam = Annotated[
    Outcome | None, Query(description="only contacts whose most recent finished call had this outcome")
]
PhoneParam = Annotated[
    str | None,
    Query(max_length=200, description="only this contact: a phone in any form addContacts accepts"),
]
Limit = Annotated[RowPageSize, WholeNumber, Query(description="rows per page, 1 to 1,000")]
Cursor = Annotated[str | None, Query(max_length=512, description="the last page's next_cursor")]
FormatParam = Annotated[ExportFormat, Query(description="csv (for spreadsheets) or ndjson")]
_FROM = "only calls started at or after this ISO 8601 time (no offset: UTC)"
From = Annotated[datetime | None, Query(alias="from", description=_FROM)]
To = Annotated[datetime | None, Query(description="only calls started before this ISO 8601 time")]
_CSV = {"type": "string", "description": "UTF-8 with BOM: a header row, then one row per record"}
_NDJSON = {"type": "string", "description": "one JSON object per line, as the JSON pages show each record"}
_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, streamed (Content-Disposition: attachment; filename=...)",
        "content": {"text/csv": {"schema": _CSV}, "application/x-ndjson": {"schema": _NDJSON}},
    }
}


def _answer(data: Any, pagination: dict[str, Any] | None = None) -> Response:
    """The seed's envelope around `data`, written by orjson as it is: the records come from
    reports/schemas.py's record functions, which give every field of the declared model, so a
    second validation (a page of 1,000 rows costs it several milliseconds) would find nothing."""
    body = (
        {"success": True, "data": data}
        if pagination is None
        else {"success": True, "data": data, "pagination": pagination}
    )
    return Response(orjson.dumps(body), media_type="application/json")


def _call_filter(outcome: Outcome | None, start: datetime | None, end: datetime | None) -> CallFilter:
    """The calls asked for: [from, to) in epoch ms; a 400 when `from` is not before `to`."""
    from_ms = None if start is None else epoch_ms(start)
    to_ms = None if end is None else epoch_ms(end)
    if from_ms is not None and to_ms is not None and from_ms >= to_ms:
        raise ValidationFailed("from: must be before to (the range is [from, to))")
    return CallFilter(outcome, from_ms, to_ms)


@router.get("/getContacts/{campaignId}", response_model=ContactPage)
def get_contacts(
    campaign_id: CampaignId,
    key: ReadKey,
    db: Db,
    state: StateParam = None,
    last_outcome: OutcomeParam = None,
    phone: PhoneParam = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """The campaign's contacts in the order they were added, one page at a time (pass back
    `next_cursor`), filtered by state, last outcome and phone (each given filter must match).

    `state=failed` lists exactly calls_failed contacts, `last_outcome=busy` exactly
    call_status_breakdown.busy. 400 for an unknown filter value (the message lists the allowed
    ones), a phone addContacts would refuse, a limit outside 1-1000 or a foreign cursor; 404 for no
    such campaign of the key's account.
    """
    where = ContactFilter(state, last_outcome, phone)
    rows, next_cursor = service.contacts_page(db, key.account_id, campaign_id, where, cursor, limit)
    return _answer(rows, {"next_cursor": next_cursor, "limit": limit})


@router.get("/getContact/{campaignId}/{contactId}", response_model=ContactEnvelope)
def get_contact(
    campaign_id: CampaignId,
    key: ReadKey,
    db: Db,
    contact_id: Annotated[int, Path(alias="contactId", ge=1, le=2**63 - 1)],
) -> Response:
    """One contact with its calls in attempt order; 404 for no such contact in the account's campaign."""
    detail = service.contact_detail(db, key.account_id, campaign_id, contact_id)
    return _answer(detail)


@router.get("/getCalls/{campaignId}", response_model=CallPage)
def get_calls(
    campaign_id: CampaignId,
    key: ReadKey,
    db: Db,
    outcome: Annotated[Outcome | None, Query(description="only ended calls with this outcome")] = None,
    start: From = None,
    to: To = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """The campaign's calls, newest first (by start, then call_id), one page at a time, filtered by
    outcome and by a start in [from, to). 400 for an unknown outcome, a time that is not ISO 8601,
    from not before to, a limit outside 1-1000 or a foreign cursor; 404 for no such campaign."""
    where = _call_filter(outcome, start, to)
    rows, next_cursor = service.calls_page(db, key.account_id, campaign_id, where, cursor, limit)
    return _answer(rows, {"next_cursor": next_cursor, "limit": limit})


async def _body(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The export's chunks, each read in a worker thread; the snapshot is closed however the stream
    ends (done, the client gone, an error)."""
    try:
        while (chunk := await run_sync(next, chunks, None)) is not None:
            yield chunk
    finally:
        await run_sync(getattr(chunks, "close", lambda: None))


def _streaming(export: service.Export) -> StreamingResponse:
    disposition = f'attachment; filename="{export.file_name}"'
    headers: dict[str, Any] = {"Content-Disposition": disposition, "Cache-Control": "no-store"}
    return StreamingResponse(_body(export.chunks), media_type=export.media_type, headers=headers)


@router.get("/exportContacts/{campaignId}", response_class=StreamingResponse, responses=_FILE)
def export_contacts(
    campaign_id: CampaignId,
    key: ReadKey,
    db: Db,
    format: FormatParam = "csv",
    state: StateParam = None,
    last_outcome: OutcomeParam = None,
    phone: PhoneParam = None,
) -> StreamingResponse:
    """Every contact getContacts lists for these filters, as one file (CSV or NDJSON), streamed from
    one snapshot of the campaign. Same 400 and 404 as getContacts, answered before the file starts."""
    where = ContactFilter(state, last_outcome, phone)
    return _streaming(service.export_contacts(db, key.account_id, campaign_id, where, format))


@router.get("/exportCalls/{campaignId}", response_class=StreamingResponse, responses=_FILE)
def export_calls(
    campaign_id: CampaignId,
    key: ReadKey,
    db: Db,
    format: FormatParam = "csv",
    outcome: Annotated[Outcome | None, Query(description="only ended calls with this outcome")] = None,
    start: From = None,
    to: To = None,
) -> StreamingResponse:
    """Every call getCalls lists for these filters (newest first), as one file, streamed from one
    snapshot. Same 400 and 404 as getCalls, answered before the file starts."""
    where = _call_filter(outcome, start, to)
    return _streaming(service.export_calls(db, key.account_id, campaign_id, where, format))
