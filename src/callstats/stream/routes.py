"""HTTP route of the live stats: streamCampaignStats (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import StreamingResponse

from callstats.accounts.deps import ReadKey
from callstats.config import Settings
from callstats.db.engine import Database
from callstats.feed import ChangeFeed, relay_for
from callstats.ids import CampaignId
from callstats.stream.hub import StreamHub
from callstats.stream.sse import stats_events

router = APIRouter(tags=["stats"])
STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


@router.get(
    "/streamCampaignStats/{campaignId}",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
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


def install_streaming(api: FastAPI, settings: Settings, db: Database) -> None:
    """Give the app its change feed (`api.state.feed`), its stream hub and the stream route."""
    feed = ChangeFeed(relay_for(db, settings.redis_url))
    api.state.feed = feed
    api.state.streams = StreamHub(
        db, feed, settings.stream_poll_seconds, settings.stream_min_interval_seconds
    )
    api.include_router(router)
