"""HTTP route of the calls domain: recordCallEvents."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from callstats.accounts.deps import WriteKey
from callstats.calls import service
from callstats.calls.schemas import RecordEventsEnvelope, RecordEventsResult, event_items
from callstats.db.deps import Db
from callstats.web import RawBody

router = APIRouter(tags=["calls"])


@router.post("/recordCallEvents")
def record_call_events(key: WriteKey, db: Db, request: Request, body: RawBody) -> RecordEventsEnvelope:
    """Record up to 1,000 call events; each is applied, a duplicate, or rejected with a reason."""
    region = request.app.state.settings.default_region
    items = event_items(body)
    result = service.record_events(db, key.account_id, items, region)
    request.app.state.feed.publish_many(applied_campaigns(items, result))
    return RecordEventsEnvelope(data=result)


def applied_campaigns(items: list[Any], result: RecordEventsResult) -> set[str]:
    """The campaigns an answered request applied events to (what the change feed must hear about)."""
    return {str(uuid.UUID(items[r.index]["campaign_id"])) for r in result.results if r.status == "applied"}
