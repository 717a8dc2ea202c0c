"""HTTP routes of the campaigns domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request

from callstats.accounts.deps import ReadKey, WriteKey
from callstats.campaigns import service
from callstats.campaigns.schemas import (
    AddContactsEnvelope,
    CampaignEnvelope,
    CampaignPage,
    CreateCampaign,
    Pagination,
    contact_rows,
)
from callstats.db.deps import Db
from callstats.ids import CampaignId
from callstats.web import RawBody

router = APIRouter(tags=["campaigns"])


@router.post("/createCampaign", status_code=201)
def create_campaign(body: CreateCampaign, key: WriteKey, db: Db) -> CampaignEnvelope:
    """Create a campaign; answers 201 with its campaign_id."""
    return CampaignEnvelope(data=service.create_campaign(db, key.account_id, body))


@router.get("/getCampaigns")
def get_campaigns(
    key: ReadKey,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> CampaignPage:
    """The account's campaigns, newest first, one page at a time (pass back `next_cursor`)."""
    page, next_cursor = service.list_campaigns(db, key.account_id, cursor, limit)
    return CampaignPage(data=page, pagination=Pagination(next_cursor=next_cursor, limit=limit))


@router.get("/getCampaign/{campaignId}")
def get_campaign(campaign_id: CampaignId, key: ReadKey, db: Db) -> CampaignEnvelope:
    """One campaign of the account."""
    return CampaignEnvelope(data=service.get_campaign(db, key.account_id, campaign_id))


@router.post("/addContacts/{campaignId}")
def add_contacts(
    campaign_id: CampaignId,
    key: WriteKey,
    db: Db,
    request: Request,
    body: RawBody,
    content_type: Annotated[str, Header()] = "application/json",
) -> AddContactsEnvelope:
    """Add up to 10,000 contacts (JSON or CSV); phones are normalized to E.164."""
    rows = contact_rows(body, content_type)
    region = request.app.state.settings.default_region
    added = service.add_contacts(db, key.account_id, campaign_id, rows, region)
    if added.accepted:
        request.app.state.feed.publish(campaign_id)
    return AddContactsEnvelope(data=added)
