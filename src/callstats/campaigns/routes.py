"""HTTP routes of the campaigns domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from callstats.accounts.deps import ReadKey, WriteKey
from callstats.bodies import WholeNumber
from callstats.campaigns import service
from callstats.campaigns.contact_lists import contact_rows
from callstats.campaigns.schemas import (
    MAX_SUMMARY_IDS,
    AddContactsEnvelope,
    CampaignEnvelope,
    CampaignPage,
    CampaignSummaries,
    CreateCampaign,
    DeletedCampaignEnvelope,
    ForgottenContactEnvelope,
    create_campaign_body,
    status_filter,
    summary_ids,
)
from callstats.core.phones import UnknownRegion, region_code
from callstats.db.deps import Db
from callstats.errors import ValidationFailed
from callstats.ids import CampaignId, ContactId
from callstats.pages import PageSize, Pagination
from callstats.web import RawBody

router = APIRouter(tags=["campaigns"])
SUMMARY_IDS_PATTERN = r"^[ \tA-Za-z0-9{}:,-]*$"  # UUIDs in any form uuid.UUID reads, commas, spaces
SUMMARY_IDS_DESCRIPTION = (
    f"Comma-separated campaign ids (UUIDs), 1 to {MAX_SUMMARY_IDS}; repeats are answered once. "
    "Ids the key's account has no campaign for are left out of the answer."
)


# The body is read raw and parsed with the depth limit of every route (bodies.parse_json); OpenAPI
# still shows the model it must fit.
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CreateCampaign.model_json_schema()}},
    }
}


def server_now(request: Request) -> int:
    """The server's clock in epoch ms (the app's `clock`: the wall clock, or a test's)."""
    now: int = request.app.state.clock()
    return now


Now = Annotated[int, Depends(server_now)]
_STATUS = "Only campaigns in this status now: not_started, running, stalled or completed"


@router.post("/createCampaign", status_code=201, openapi_extra=_CREATE_BODY)
def create_campaign(key: WriteKey, db: Db, request: Request, body: RawBody, now: Now) -> CampaignEnvelope:
    """Create a campaign; answers 201 with the campaign (its campaign_id, status `not_started`)."""
    fields = create_campaign_body(body)
    server_region = request.app.state.settings.default_region
    return CampaignEnvelope(data=service.create_campaign(db, key.account_id, fields, server_region, now))


@router.get("/getCampaigns")
def get_campaigns(
    key: ReadKey,
    db: Db,
    now: Now,
    limit: Annotated[PageSize, WholeNumber, Query()] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: Annotated[str | None, Query(max_length=64, description=_STATUS)] = None,
) -> CampaignPage:
    """The account's campaigns (those in `status` when given), newest first, one page at a time (pass
    back `next_cursor`). 400 VALIDATION_ERROR for an unknown status or a cursor this API did not give."""
    wanted = status_filter(status)
    page, next_cursor = service.list_campaigns(db, key.account_id, cursor, limit, now, wanted)
    return CampaignPage(data=page, pagination=Pagination(next_cursor=next_cursor, limit=limit))


@router.get("/getCampaign/{campaignId}")
def get_campaign(campaign_id: CampaignId, key: ReadKey, db: Db, now: Now) -> CampaignEnvelope:
    """One campaign of the account, with its status and last_event_at now; 404 when the account has none."""
    return CampaignEnvelope(data=service.get_campaign(db, key.account_id, campaign_id, now))


@router.post("/deleteCampaign/{campaignId}")
def delete_campaign(
    campaign_id: CampaignId, key: WriteKey, db: Db, request: Request
) -> DeletedCampaignEnvelope:
    """Delete a campaign and everything stored for it, in one transaction: `{"campaign_id", "deleted":
    true}`. The id then answers 404 everywhere, a second deleteCampaign included; live streams of it end.
    """
    deleted = service.delete_campaign(db, key.account_id, campaign_id)
    request.app.state.feed.publish(campaign_id)  # streams of it, in every process, read it gone and end
    return DeletedCampaignEnvelope(data=deleted)


@router.post("/forgetContact/{campaignId}/{contactId}")
def forget_contact(
    campaign_id: CampaignId, contact_id: ContactId, key: WriteKey, db: Db, now: Now
) -> ForgottenContactEnvelope:
    """Erase a contact's phone, name and metadata and delete its stored carrier callbacks; its state,
    attempts and calls stay, so every statistic is unchanged (docs/privacy.md). Safe to repeat (the
    first erasure's `erased_at` is kept). 404 when the campaign has no such contact."""
    forgotten = service.forget_contact(db, key.account_id, campaign_id, contact_id, now)
    return ForgottenContactEnvelope(data=forgotten)


_REGION = (
    "ISO 3166-1 alpha-2 region for numbers without +country, for this request only (default: the campaign's)"
)
_PHONE_COLUMN = "the CSV column holding the phones (default: the first of phone, phone_number, mobile, ...)"


def _region(value: str | None) -> str | None:
    """The `region` query parameter as a known region code, None when absent; a 400 when unknown."""
    try:
        return None if value is None else region_code(value)
    except UnknownRegion as exc:
        raise ValidationFailed(f"region: {exc}") from None


@router.post("/addContacts/{campaignId}")
def add_contacts(
    campaign_id: CampaignId,
    key: WriteKey,
    db: Db,
    request: Request,
    body: RawBody,
    content_type: Annotated[str | None, Header()] = None,
    region: Annotated[str | None, Query(max_length=8, description=_REGION)] = None,
    phone_column: Annotated[str | None, Query(max_length=200, description=_PHONE_COLUMN)] = None,
) -> AddContactsEnvelope:
    """Add up to 10,000 contacts (JSON or CSV); phones are normalized to E.164 plus any extension.

    `Content-Type: application/json` is read as JSON, `text/csv` (`application/csv`,
    `text/tab-separated-values`) as CSV; without either, the body is read as JSON when it parses, else
    as CSV when its header names a phone column, else a 400 naming the accepted types. Malformed CSV
    is a 400 naming the line, and nothing is added.
    """
    rows = contact_rows(body, content_type, phone_column)
    added = service.add_contacts(db, key.account_id, campaign_id, rows, _region(region))
    if added.accepted:
        request.app.state.feed.publish(campaign_id)
    return AddContactsEnvelope(data=added)


@router.get("/getCampaignSummaries")
def get_campaign_summaries(
    key: ReadKey,
    db: Db,
    # Optional to FastAPI so that a missing campaignIds gets the same message as an empty one
    # (summary_ids: "campaignIds: give at least one campaign id"); the route needs at least one id.
    campaign_ids: Annotated[
        str,
        Query(
            alias="campaignIds",
            max_length=MAX_SUMMARY_IDS * 40,
            description=SUMMARY_IDS_DESCRIPTION,
            # Documented only (summary_ids gives the field's own message): no id holds another character,
            # and it keeps the longest valid query line within what the HTTP server reads (64 KiB).
            json_schema_extra={"pattern": SUMMARY_IDS_PATTERN},
        ),
    ] = "",
) -> CampaignSummaries:
    """Contact counts and success rate of up to 200 of the account's campaigns, for lists.

    Each figure means what the field of the same name means in getCampaignStats
    (docs/semantics.md). Not counted against any campaign's getCampaignStats rate limit: it is one
    indexed read of the campaigns' counters, whatever their size. 400 for a malformed or empty
    `campaignIds` or more than 200 ids; 401 for a missing or invalid key. Unknown ids, and ids of
    another account's campaigns, are left out (their existence is not revealed).
    """
    return CampaignSummaries(data=service.summaries(db, key.account_id, summary_ids(campaign_ids)))
