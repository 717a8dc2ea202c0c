"""The simulated dialer as a background task: due events go through the same ingestion path as the
API, or, with a carrier route, as that platform's signed webhooks posted to the demo's own server."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
from anyio.to_thread import run_sync

from callstats.app import BackgroundTask
from callstats.calls.schemas import EventRules
from callstats.calls.service import record_events
from callstats.core.lifecycle import RetryRules
from callstats.db.engine import Database
from callstats.demo import platforms
from callstats.demo.platforms import Callback, DemoCall
from callstats.demo.simulation import DialerConfig, DialerSimulation, SimEvent

log = logging.getLogger("callstats.demo")

POST_CONNECTIONS = 16  # webhooks in flight at once; one contact's always one after the other
POST_TIMEOUT_S = 30.0
RETRIES = 20  # deliveries of one callback after its first, RETRY_PAUSE_S apart
RETRY_PAUSE_S = 0.5

Due = list[tuple[SimEvent, int]]
"""One tick's events with the time each happened, epoch ms, in time order."""
Deliver = Callable[[Due], Awaitable[None]]


@dataclass(frozen=True)
class DemoCampaign:
    """The campaign the dialer works through: whose it is and the E.164 phones of its contacts."""

    account_id: str
    campaign_id: str
    phones: tuple[str, ...]
    rules: RetryRules
    events: EventRules  # the server's ingestion rules (CALLSTATS_DEFAULT_REGION, the time window)


@dataclass(frozen=True)
class CarrierRoute:
    """How the dialer reports its calls as a platform would: `provider`, the carrier connection's
    signing `secret`, `signed_url` (the connection's webhook_url with `?campaign_id=`: the URL the
    platform signs) and `post_url` (the same path and query on the demo's own address, where the
    dialer sends them; the two differ only when CALLSTATS_PUBLIC_URL names another base)."""

    provider: str
    connection_id: str
    secret: str = field(repr=False)
    signed_url: str
    post_url: str


def event_item(event: SimEvent, campaign: DemoCampaign, occurred_at: float) -> dict[str, Any]:
    """A simulated event shaped like one event of a recordCallEvents body."""
    item: dict[str, Any] = {
        "event_id": f"{event.call_id}:{event.type}",
        "campaign_id": campaign.campaign_id,
        "phone": campaign.phones[event.contact],
        "call_id": event.call_id,
        "type": event.type,
        "occurred_at": datetime.fromtimestamp(occurred_at, tz=UTC).isoformat(timespec="milliseconds"),
    }
    if event.type == "call.ended":
        item["outcome"] = event.outcome
        item["duration_seconds"] = event.duration_seconds
    return item


def dialer_task(
    campaign: DemoCampaign,
    speed: float,
    announce: Callable[[str], None],
    seed: int | None = None,
    tick: float = 0.25,
    config: DialerConfig | None = None,
    via: CarrierRoute | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> BackgroundTask:
    """A background task that dials the campaign in time accelerated `speed` times, then stops.

    Without `via` the events are recorded in process (calls.service.record_events); with it each is
    posted as `via.provider`'s signed callbacks (demo.platforms) over HTTP, through `transport` when
    given (tests: the app in process), else the network.
    """

    async def run(db: Database) -> None:
        simulation = DialerSimulation(range(len(campaign.phones)), campaign.rules, config, seed)
        started = time.monotonic()
        try:
            if via is None:
                await _dial(simulation, speed, tick, lambda due: _record(db, campaign, due))
            else:
                async with _client(transport) as client:
                    await _dial(simulation, speed, tick, lambda due: _post_all(client, via, campaign, due))
        except Exception:
            log.exception("the demo dialer stopped on an error")
            return
        counts = simulation.states()
        announce(
            f"Campaign complete after {time.monotonic() - started:.0f} s: "
            f"{counts['completed']} completed, {counts['failed']} failed. Still serving; Ctrl-C stops it."
        )

    return run


async def _dial(simulation: DialerSimulation, speed: float, tick: float, deliver: Deliver) -> None:
    """Every tick, deliver the events that have come due since the last one, until the campaign is done."""
    started, wall_start = time.monotonic(), time.time()
    while not simulation.finished:
        await anyio.sleep(tick)
        due = simulation.advance((time.monotonic() - started) * speed)
        if due:
            await deliver([(e, round((wall_start + e.at / speed) * 1000)) for e in due])


async def _record(db: Database, campaign: DemoCampaign, due: Due) -> None:
    """Ingest one tick's events; a rejection means the simulation and the server disagree."""
    items = [event_item(event, campaign, at_ms / 1000) for event, at_ms in due]
    result = await run_sync(record_events, db, campaign.account_id, items, campaign.events)
    for rejected in (r for r in result.results if r.status == "rejected"):
        log.warning("demo event %s rejected: %s", rejected.event_id, rejected.reason)


def _client(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=POST_CONNECTIONS)
    timeout = httpx.Timeout(POST_TIMEOUT_S, pool=None)  # waiting for a free connection is no failure
    return httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout)


async def _post_all(client: httpx.AsyncClient, via: CarrierRoute, campaign: DemoCampaign, due: Due) -> None:
    """Post one tick's callbacks: each contact's in order (a retry never overtakes the call before
    it), different contacts' side by side."""
    chains: dict[int, list[Callback]] = {}
    for event, at_ms in due:
        call = DemoCall(campaign.campaign_id, campaign.phones[event.contact])
        chains.setdefault(event.contact, []).extend(platforms.callbacks(via.provider, event, call, at_ms))

    async def post_chain(chain: list[Callback]) -> None:
        for callback in chain:
            await _post(client, via, callback)

    async with anyio.create_task_group() as group:
        for chain in chains.values():
            group.start_soon(post_chain, chain)


async def _post(client: httpx.AsyncClient, via: CarrierRoute, callback: Callback) -> None:
    """Deliver one signed callback; a refusal or an unmatched verdict means the demo and the server
    disagree: logged, as a rejected event is."""
    response = await _delivered(client, via, callback)
    if not response.is_success:
        log.warning(
            "demo %s callback refused: %d %s", via.provider, response.status_code, response.text[:200]
        )
    elif response.status_code == 200 and response.json()["data"]["verdict"] == "unmatched":
        log.warning("demo %s callback unmatched: %s", via.provider, response.json()["data"]["reason"])


async def _delivered(client: httpx.AsyncClient, via: CarrierRoute, callback: Callback) -> httpx.Response:
    """The server's answer to a callback, sent again (signed anew) after a pause while the server
    cannot take it (no connection, or 503), as a platform retries. When the server stops, its
    shutdown cancels the dialer in such a pause. Raises httpx.TransportError after RETRIES retries."""
    attempt = 0
    while True:
        response = await _send(client, via, callback, last=attempt == RETRIES)
        if response is not None and (response.status_code != 503 or attempt == RETRIES):
            return response
        attempt += 1
        await anyio.sleep(RETRY_PAUSE_S)


async def _send(
    client: httpx.AsyncClient, via: CarrierRoute, callback: Callback, last: bool
) -> httpx.Response | None:
    """One delivery of a callback, signed now; None when it did not reach the server (raised if `last`)."""
    body, headers = platforms.signed_request(
        via.provider, via.secret, via.signed_url, callback, round(time.time() * 1000)
    )
    try:
        return await client.post(via.post_url, content=body, headers=headers)
    except httpx.TransportError:
        if last:
            raise
        return None
