"""HTTP route of the calls domain: recordCallEvents, as OpenAPI describes it.

The dispatcher serves this path with calls/endpoint.py before the framework sees
it; this route declares it (and serves it the same way if reached directly).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from callstats.accounts.deps import WriteKey
from callstats.calls import service
from callstats.calls.schemas import EventRules, RecordEventsEnvelope, event_items
from callstats.db.deps import Db
from callstats.web import RawBody

router = APIRouter(tags=["calls"])


@router.post("/recordCallEvents")
def record_call_events(key: WriteKey, db: Db, request: Request, body: RawBody) -> RecordEventsEnvelope:
    """Record up to 1,000 call events; each is applied, a duplicate, or rejected with a reason."""
    rules = EventRules.from_settings(request.app.state.settings)
    items = event_items(body)
    result = service.record_events(db, key.account_id, items, rules)
    request.app.state.feed.publish_many(service.applied_campaigns(items, result))
    return RecordEventsEnvelope(data=result)
