"""GET /getCampaignStats/{campaignId}: the hot path, as one plain ASGI endpoint.

Role: the routes of stats/, HTTP only: the path's id, `?include=`, the key header, If-None-Match,
the status and headers; StatsService (stats/service.py) does the rest. It skips the framework's
per-request machinery (the stack's overhead, not the database, sets the ceiling here) but not a
single check: id, key, tenancy, rate limit, ETag. `declaration` describes the route for OpenAPI.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Query

from callstats.accounts.deps import ReadKey
from callstats.accounts.service import key_id_of
from callstats.errors import StatsFailed, ValidationFailed
from callstats.ids import CampaignId, campaign_uuid
from callstats.stats.response import INCLUDABLE
from callstats.stats.schemas import Section, StatsEnvelope
from callstats.stats.service import StatsService
from callstats.web import Answer, HotEndpoint, Receive, Scope

PATH_PREFIX = "/getCampaignStats/"


def _header(description: str, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


_RATE_HEADERS = {
    "RateLimit-Policy": _header('The quota: `"stats";q=200;w=60` (200 requests per 60 s, per campaign)'),
    "RateLimit": _header(
        'What is left: `"stats";r=199;t=60` (r remaining, t seconds until the quota frees up); absent when'
        " the limiter's backend is unreachable and the read is let through",
        required=False,
    ),
}
_CACHE_HEADERS = {
    "ETag": _header("The body's version: send it back in If-None-Match to get a 304 while unchanged"),
    "Cache-Control": _header("no-cache"),
}
STATS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The campaign's statistics", "headers": _RATE_HEADERS | _CACHE_HEADERS},
    304: {
        "description": "Not modified since the ETag in If-None-Match",
        "headers": _RATE_HEADERS | _CACHE_HEADERS,
    },
    429: {
        "description": "RATE_LIMITED: over this campaign's quota",
        "headers": _RATE_HEADERS | {"Retry-After": _header("Seconds until a request is accepted again")},
    },
}

# OpenAPI's description of the route (openapi.describe adds it to the document): the Dispatcher serves the
# path with StatsEndpoint before the framework, so this declaration is never mounted in the app.
declaration = APIRouter(tags=["stats"])


@declaration.get(
    PATH_PREFIX + "{campaignId}",
    operation_id="getCampaignStats",
    response_model=StatsEnvelope,
    responses=STATS_RESPONSES,
)
async def get_campaign_stats(
    campaign_id: CampaignId,
    key: ReadKey,
    include: Annotated[
        list[Section],
        Query(
            description="Extra sections, comma-separated: `attempts`, `durations`, `raw_outcomes` (or the"
            " parameter repeated)"
        ),
    ] = [],  # noqa: B006 (never called: a declaration)
    if_none_match: Annotated[str | None, Header(description="An ETag this route answered")] = None,
) -> StatsEnvelope:
    """Current statistics of one campaign, exactly as VoiceGenie's getCampaignStats (the seed's response).

    `?include=attempts` adds every call attempt by outcome and the attempts-per-contact histogram;
    `?include=durations` adds talk-time percentiles (p50, p90, p99, seconds) and their histogram;
    `?include=raw_outcomes` adds the ended calls by the carrier's raw outcome (`{"twilio:busy": 3}`).
    Each answer carries RateLimit-Policy, RateLimit and ETag headers; a 500 says "Failed to retrieve
    campaign statistics", as the seed does. Served by StatsEndpoint (this body never runs).
    """
    raise NotImplementedError("StatsEndpoint serves getCampaignStats")


class StatsEndpoint(HotEndpoint):
    """The ASGI endpoint serving campaign statistics: HTTP in and out, the use case in StatsService."""

    method = "GET"
    unexpected = StatsFailed  # the seed's 500: "Failed to retrieve campaign statistics"

    def __init__(self, service: StatsService) -> None:
        self.service = service

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """The campaign's stats for the presented key, or a bodiless 304 when If-None-Match has its ETag."""
        include = _include(scope.get("query_string", b""))
        campaign_id = campaign_uuid(scope["path"][len(PATH_PREFIX) :])
        plaintext = self.api_key(scope)
        quota_headers, stats = await self.service.answer(
            plaintext, key_id_of(plaintext), campaign_id, include
        )
        headers = [*quota_headers, ("ETag", stats.etag), ("Cache-Control", "no-cache")]
        if _etag_matches(self.header(scope, b"if-none-match"), stats.etag):
            return 304, headers, b""
        return 200, headers, stats.body


def _include(query_string: bytes) -> frozenset[str]:
    """The extra sections asked for with ?include=a,b; a 400 for anything unknown."""
    if not query_string:
        return frozenset()
    asked: set[str] = set()
    for values in parse_qs(query_string.decode("latin-1")).get("include", []):
        asked.update(v.strip() for v in values.split(",") if v.strip())
    unknown = sorted(asked - set(INCLUDABLE))
    if unknown:
        raise ValidationFailed(f"include: unknown section(s) {unknown}; allowed: {list(INCLUDABLE)}")
    return frozenset(asked)


def _etag_matches(if_none_match: bytes | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.decode("latin-1").split(",")]
    return "*" in tags or etag in tags
