"""HTTP route of the time series: getCampaignTimeseries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from callstats.accounts.deps import ReadKey
from callstats.db.deps import Db
from callstats.ids import CampaignId
from callstats.timeseries import service
from callstats.timeseries.schemas import Interval, TimeseriesEnvelope

router = APIRouter(tags=["stats"])


@router.get("/getCampaignTimeseries/{campaignId}")
def get_campaign_timeseries(
    campaign_id: CampaignId,
    key: ReadKey,
    db: Db,
    interval: Interval = "hour",
    start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
) -> TimeseriesEnvelope:
    """Per-bucket call starts, outcomes, answered talk time and success rate, zero-filled, in `tz`.

    The answer is TimeseriesEnvelope (timeseries/schemas.py, docs/history.md). 400 for an unknown
    `interval` or `tz`, a malformed `from`/`to`, `to` not after `from`, or more than 10,000 buckets;
    404 for no such campaign in the key's account.
    """
    data = service.timeseries(db, key.account_id, campaign_id, interval, start, end, tz)
    return {"success": True, "data": data}
