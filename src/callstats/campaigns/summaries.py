"""GET /getCampaignSummaries: the few figures a campaign list shows, for many campaigns in one read.

A list of campaigns needs each one's progress, not its whole statistics. Reading them through
getCampaignStats would spend each campaign's stats quota (docs/semantics.md, Rate limit) on every
refresh of every open list; this route reads the same counters rows (by primary key, a fixed number
of slot rows per campaign) in one query for up to 200 campaigns and is not counted against that quota.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection, func, literal_column, select

from callstats.accounts.deps import ReadKey
from callstats.db.deps import Db
from callstats.db.engine import Database
from callstats.db.schema import campaign_counters
from callstats.errors import ValidationFailed
from callstats.ids import campaign_uuid
from callstats.stats.response import success_rate

router = APIRouter(tags=["campaigns"])
MAX_IDS = 200  # the largest page getCampaigns returns
_IDS_DESCRIPTION = (
    f"Comma-separated campaign ids (UUIDs), 1 to {MAX_IDS}; repeats are answered once. "
    "Ids the key's account has no campaign for are left out of the answer."
)


class CampaignSummary(BaseModel):
    """One campaign's progress: the contact counts and success rate of getCampaignStats, same definitions."""

    campaign_id: str = Field(json_schema_extra={"format": "uuid"})
    total_contacts: int = Field(ge=0, description="contacts in the campaign")
    calls_completed: int = Field(ge=0, description="contacts in state completed (final: answered)")
    calls_failed: int = Field(ge=0, description="contacts in state failed (final: attempts used up)")
    calls_in_progress: int = Field(ge=0, description="contacts with a call under way")
    calls_pending: int = Field(ge=0, description="contacts not dialed yet or waiting for a retry")
    success_rate: float = Field(
        ge=0, le=100, description="100 * completed / (completed + failed), half-up to 2 decimals; 0 when none"
    )


class CampaignSummaries(BaseModel):
    """getCampaignSummaries' answer in the seed's envelope: the summaries in the order the ids were asked."""

    success: bool = True
    data: list[CampaignSummary]


def parse_ids(raw: str) -> list[str]:
    """The asked ids in canonical form, first occurrence order; a 400 naming the field otherwise."""
    ids: dict[str, None] = {}
    for part in raw.split(","):
        if part.strip():
            try:
                ids[campaign_uuid(part.strip())] = None
            except ValidationFailed:
                raise ValidationFailed(f"campaignIds: {part.strip()[:64]!r} is not a UUID") from None
    if not ids:
        raise ValidationFailed("campaignIds: give at least one campaign id")
    if len(ids) > MAX_IDS:
        raise ValidationFailed(f"campaignIds: at most {MAX_IDS} ids, got {len(ids)}")
    return list(ids)


def summary_rows(conn: Connection, account_id: str, campaign_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Campaign id -> summed counters for the account's campaigns among `campaign_ids` (one query).

    Every campaign has its counters rows from creation on, so a campaign of the account is never
    missing; an id of another account or of no campaign matches no row.
    """
    cc = campaign_counters.c
    names = ("total", "pending", "in_progress", "completed", "failed")
    query = (
        select(cc.campaign_id, *(_sum(cc[name]).label(name) for name in names))
        .where(cc.campaign_id.in_(campaign_ids), cc.account_id == account_id)
        .group_by(cc.campaign_id)
    )
    return {row["campaign_id"]: dict(row) for row in conn.execute(query).mappings()}


def _sum(column: Any) -> Any:
    """SUM(column), 0 when NULL."""
    return func.coalesce(func.sum(column), literal_column("0"))


def summaries(db: Database, account_id: str, campaign_ids: list[str]) -> list[CampaignSummary]:
    """The summaries of the account's campaigns among `campaign_ids`, in their order."""
    with db.read() as conn:
        rows = summary_rows(conn, account_id, campaign_ids)
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


@router.get("/getCampaignSummaries")
def get_campaign_summaries(
    key: ReadKey,
    db: Db,
    campaign_ids: Annotated[
        str, Query(alias="campaignIds", min_length=1, max_length=MAX_IDS * 40, description=_IDS_DESCRIPTION)
    ],
) -> CampaignSummaries:
    """Contact counts and success rate of up to 200 of the account's campaigns, for lists.

    Each figure means what the field of the same name means in getCampaignStats
    (docs/semantics.md). Not counted against any campaign's getCampaignStats rate limit: it is one
    indexed read of the campaigns' counters, whatever their size. 400 for a malformed or empty
    `campaignIds` or more than 200 ids; 401 for a missing or invalid key. Unknown ids, and ids of
    another account's campaigns, are left out (their existence is not revealed).
    """
    return CampaignSummaries(data=summaries(db, key.account_id, parse_ids(campaign_ids)))
