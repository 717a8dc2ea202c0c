"""feed.py on a real Redis: a burst of signals is relayed coalesced (at most one send per
RELAY_INTERVAL_SECONDS, each campaign once), and the last change of every campaign still arrives."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio

from callstats.feed import CHANNEL, RELAY_INTERVAL_SECONDS, ChangeFeed, RedisRelay
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="no CALLSTATS_TEST_REDIS_URL")


async def _relayed(origin: str, until: float) -> list[tuple[float, str]]:
    """Every message `origin` publishes on the feed's channel before `until` (monotonic), with its time."""
    assert REDIS_URL
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    seen: list[tuple[float, str]] = []
    try:
        await pubsub.subscribe(CHANNEL)
        while time.monotonic() < until:
            message = await pubsub.get_message(timeout=0.05)
            if message is not None and message["data"].decode().startswith(origin + "@"):
                seen.append((time.monotonic(), message["data"].decode().partition(":")[2]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await client.aclose()
    return seen


async def test_a_burst_is_relayed_at_most_once_per_interval_and_nothing_is_stranded() -> None:
    assert REDIS_URL
    feed = ChangeFeed(RedisRelay(REDIS_URL))
    await feed.start()
    burst_seconds = 0.6
    listening = asyncio.create_task(_relayed(feed.origin, time.monotonic() + burst_seconds + 1.0))
    await asyncio.sleep(0.2)  # subscribed before the first signal
    campaigns = [f"campaign-{n}" for n in range(3)]
    published, start = 0, time.monotonic()
    while time.monotonic() - start < burst_seconds:
        for campaign_id in campaigns:
            feed.publish(campaign_id)
            published += 1
        await asyncio.sleep(0.001)
    seen = await listening
    await feed.stop()

    sends = sorted({at for at, _ in seen})
    assert published > 300
    # Each send carries each campaign at most once, and sends are RELAY_INTERVAL_SECONDS apart.
    assert len(seen) <= len(campaigns) * (burst_seconds / RELAY_INTERVAL_SECONDS + 3)
    assert {campaign_id for _, campaign_id in seen} == set(campaigns)
    # The burst's last signals were relayed after it ended (none stranded in the outbox).
    last_of = {campaign_id: at for at, campaign_id in seen}
    assert all(at >= start + burst_seconds - RELAY_INTERVAL_SECONDS for at in last_of.values())
    assert len(sends) >= 2
