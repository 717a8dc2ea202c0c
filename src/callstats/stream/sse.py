"""The Server-Sent Events wire format of the stats stream, and the resume rule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from callstats.stream.hub import Snapshot, StreamHub

PING = b": ping\n\n"
RETRY_MS = 2000


def message(snapshot: Snapshot) -> bytes:
    """One `stats` event: the snapshot's version as its id, getCampaignStats' body as its data."""
    return b"id: %d\nevent: stats\ndata: %s\n\n" % (snapshot.version, snapshot.body)


def is_resumed(last_event_id: str | None, snapshot: Snapshot) -> bool:
    """Whether a reconnecting client already has this snapshot (its Last-Event-ID is its version)."""
    return last_event_id is not None and last_event_id.strip() == str(snapshot.version)


async def stats_events(
    hub: StreamHub,
    account_id: str,
    campaign_id: str,
    last_event_id: str | None,
    heartbeat: float,
    max_seconds: float,
) -> AsyncIterator[bytes]:
    """The stream's bytes: a retry hint, the current snapshot (unless resumed), each new one, pings."""
    yield b"retry: %d\n\n" % RETRY_MS
    deadline = asyncio.get_running_loop().time() + max_seconds
    async with hub.listening(account_id, campaign_id) as mailbox:
        first = True
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            snapshot = await mailbox.next(min(heartbeat, left))
            if mailbox.closed:
                return
            if snapshot is None:
                yield PING
            elif not (first and is_resumed(last_event_id, snapshot)):
                yield message(snapshot)
            first = first and snapshot is None
