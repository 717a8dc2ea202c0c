"""The simulated dialer as a background task: due events go through the same ingestion path as the API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.to_thread import run_sync

from callstats.app import BackgroundTask
from callstats.calls.schemas import EventRules
from callstats.calls.service import record_events
from callstats.core.lifecycle import RetryRules
from callstats.db.engine import Database
from callstats.demo.simulation import DialerConfig, DialerSimulation, SimEvent

log = logging.getLogger("callstats.demo")


@dataclass(frozen=True)
class DemoCampaign:
    """The campaign the dialer works through: whose it is and the E.164 phones of its contacts."""

    account_id: str
    campaign_id: str
    phones: tuple[str, ...]
    rules: RetryRules
    events: EventRules  # the server's ingestion rules (CALLSTATS_DEFAULT_REGION, the time window)


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
) -> BackgroundTask:
    """A background task that dials the campaign in time accelerated `speed` times, then stops."""

    async def run(db: Database) -> None:
        simulation = DialerSimulation(range(len(campaign.phones)), campaign.rules, config, seed)
        started = time.monotonic()
        try:
            await _dial(db, campaign, simulation, speed, tick)
        except Exception:
            log.exception("the demo dialer stopped on an error")
            return
        counts = simulation.states()
        announce(
            f"Campaign complete after {time.monotonic() - started:.0f} s: "
            f"{counts['completed']} completed, {counts['failed']} failed. Still serving; Ctrl-C stops it."
        )

    return run


async def _dial(
    db: Database, campaign: DemoCampaign, simulation: DialerSimulation, speed: float, tick: float
) -> None:
    """Every tick, send the events that have come due since the last one, until the campaign is done."""
    started, wall_start = time.monotonic(), time.time()
    while not simulation.finished:
        await anyio.sleep(tick)
        due = simulation.advance((time.monotonic() - started) * speed)
        if due:
            items = [event_item(e, campaign, wall_start + e.at / speed) for e in due]
            await _record(db, campaign, items)


async def _record(db: Database, campaign: DemoCampaign, items: list[dict[str, Any]]) -> None:
    """Ingest one tick's events; a rejection means the simulation and the server disagree."""
    result = await run_sync(record_events, db, campaign.account_id, items, campaign.events)
    for rejected in (r for r in result.results if r.status == "rejected"):
        log.warning("demo event %s rejected: %s", rejected.event_id, rejected.reason)
