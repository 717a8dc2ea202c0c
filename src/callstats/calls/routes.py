"""recordCallEvents as OpenAPI describes it.

The dispatcher serves this path with calls/endpoint.py (RecordEventsEndpoint) before the framework sees
it, so this declaration is never mounted in the app: openapi.describe adds it to the document.
"""

from __future__ import annotations

from fastapi import APIRouter

from callstats.accounts.deps import WriteKey
from callstats.calls.schemas import RecordEventsEnvelope
from callstats.db.deps import Db
from callstats.web import RawBody

declaration = APIRouter(tags=["calls"])


@declaration.post("/recordCallEvents", operation_id="recordCallEvents")
def record_call_events(key: WriteKey, db: Db, body: RawBody) -> RecordEventsEnvelope:
    """Record up to 1,000 call events; each is applied, a duplicate, or rejected with a reason."""
    raise NotImplementedError("RecordEventsEndpoint serves recordCallEvents")
