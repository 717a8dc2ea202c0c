"""HTTP route of the time series: getCampaignTimeseries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from callstats.accounts.deps import ReadKey
from callstats.db.deps import Db
from callstats.ids import CampaignId
from callstats.timeseries import service

router = APIRouter(tags=["stats"])


@router.get("/getCampaignTimeseries/{campaignId}")
def get_campaign_timeseries(
    campaign_id: CampaignId,
    key: ReadKey,
    db: Db,
    interval: Literal["minute", "hour", "day"] = "hour",
    start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
) -> dict[str, Any]:
    """Per-bucket call starts, outcomes, answered talk time and success rate, zero-filled, in `tz`."""
    data = service.timeseries(db, key.account_id, campaign_id, interval, start, end, tz)
    return {"success": True, "data": data}
