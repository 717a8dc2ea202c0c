"""HTTP route of the live stats: streamCampaignStats (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import StreamingResponse

from callstats.accounts.deps import ReadKey
from callstats.config import Settings
from callstats.db.engine import Database
from callstats.feed import ChangeFeed, relay_for
from callstats.ids import CampaignId
from callstats.metrics.instruments import Metrics
from callstats.stats.schemas import StatsEnvelope
from callstats.stream.hub import StreamHub
from callstats.stream.sse import PING, RETRY_MS, stats_events

router = APIRouter(tags=["stats"])
STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
STATS_EVENT = "stats"  # the event name sse.message writes (a test reads it off a real stream)

# The 200 as /openapi.json shows it, each part from the code that writes it (stream/sse.py). Its events
# are declared as FastAPI declares those of its own SSE routes (fastapi.sse): the media type's
# `itemSchema` is one event, whose `data` holds JSON of the StatsEnvelope schema, getCampaignStats'
# 200 body byte for byte (OpenAPI 3.2's form, which schemathesis checks each event against).
_EVENTS = f"""Server-Sent Events (docs/api.md, streamCampaignStats), UTF-8, three kinds of message:

- `retry: {RETRY_MS}`, first: how many milliseconds a client waits before reconnecting.
- `id: <version>` `event: {STATS_EVENT}` `data: <JSON>`: the campaign's numbers, at once and then on \
every change. `data` is one line, exactly getCampaignStats' 200 body (schema \
`{StatsEnvelope.__name__}`); `id` is its version, an increasing integer to send back as \
`Last-Event-ID` when reconnecting (the numbers already held are then not resent).
- `{PING.decode().strip()}`: a comment, sent when nothing changed for the heartbeat time (keeps \
proxies from closing the connection); clients ignore it.

The server ends the stream after CALLSTATS_STREAM_MAX_SECONDS; clients reconnect with Last-Event-ID.

```
retry: {RETRY_MS}

id: 1718000000123
event: {STATS_EVENT}
data: {{"success":true,"data":{{"campaign_id":"...","total_contacts":3,...}}}}

{PING.decode().strip()}
```"""
STATS_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": f"One `{STATS_EVENT}` event, the campaign's numbers (retry hints and pings carry no data)",
    "properties": {
        "event": {"type": "string", "const": STATS_EVENT},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The numbers' version: increasing, the Last-Event-ID to resume from",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": f"#/components/schemas/{StatsEnvelope.__name__}"},
            "description": "getCampaignStats' 200 body, on one line",
        },
    },
    "required": ["event", "id", "data"],
}
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": _EVENTS,
        "content": {"text/event-stream": {"itemSchema": STATS_EVENT_SCHEMA}},
        "headers": {
            name: {"description": f"Always `{value}`", "required": True, "schema": {"type": "string"}}
            for name, value in STREAM_HEADERS.items()
        },
    }
}


@router.get(
    "/streamCampaignStats/{campaignId}",
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
)
async def stream_campaign_stats(
    campaign_id: CampaignId,
    key: ReadKey,
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """getCampaignStats' body now and on every change, as Server-Sent Events (`event: stats`)."""
    state = request.app.state
    await state.streams.check(key.account_id, campaign_id)
    settings = state.settings
    events = stats_events(
        state.streams,
        key.account_id,
        campaign_id,
        last_event_id,
        settings.stream_heartbeat_seconds,
        settings.stream_max_seconds,
    )
    return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)


def install_streaming(api: FastAPI, settings: Settings, db: Database, metrics: Metrics | None = None) -> None:
    """Give the app its change feed (`api.state.feed`), its stream hub and the stream route; both
    record in `metrics` (feed lag, open streams) when given."""
    feed = ChangeFeed(relay_for(db, settings.redis_url), metrics)
    api.state.feed = feed
    api.state.streams = StreamHub(
        db, feed, settings.stream_poll_seconds, settings.stream_min_interval_seconds, metrics
    )
    api.include_router(router)
