"""The change feed's lag across processes, through a real Redis: the publisher's wall clock travels in
the signal (`origin@published:campaign`), the receiver records now minus it; a signal without it (an
older callstats) is still delivered, untimed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from callstats.feed import CHANNEL, ChangeFeed, RedisRelay, Subscription
from callstats.metrics.exposition import exposition
from callstats.metrics.instruments import Metrics
from tests.conftest import REDIS_URL
from tests.metrics.scrape import parsed, value

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="no CALLSTATS_TEST_REDIS_URL")
COUNT, SUM = "callstats_feed_lag_seconds_count", "callstats_feed_lag_seconds_sum"


def remote(metrics: Metrics, sample: str) -> float:
    """The remote lag histogram's count or sum now."""
    return value(parsed(exposition(metrics).decode()), sample, source="remote")


@pytest.fixture
async def listening() -> AsyncIterator[tuple[Metrics, Subscription, str]]:
    """A feed with metrics subscribed to a fresh campaign, its Redis subscription confirmed."""
    assert REDIS_URL
    metrics, campaign_id = Metrics(), str(uuid.uuid4())
    feed = ChangeFeed(RedisRelay(REDIS_URL), metrics)
    subscription = feed.subscribe(campaign_id)
    sender = redis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(50):  # until the listener's SUBSCRIBE is in place
            sender.publish(CHANNEL, f"warm-up:{campaign_id}")
            if await subscription.wait(0.2):
                break
        else:
            raise AssertionError("the feed never subscribed")
        yield metrics, subscription, campaign_id
    finally:
        sender.close()
        subscription.close()
        await feed.stop()


async def test_another_process_publish_is_timed_on_arrival(
    listening: tuple[Metrics, Subscription, str],
) -> None:
    metrics, subscription, campaign_id = listening
    publisher = ChangeFeed(RedisRelay(REDIS_URL or ""))  # another origin, as another process has
    try:
        before = remote(metrics, COUNT)
        publisher.publish(campaign_id)
        assert await subscription.wait(10)
        await asyncio.sleep(0.05)
        assert remote(metrics, COUNT) - before == 1
        assert 0 <= remote(metrics, SUM) < 5
    finally:
        await publisher.stop()


async def test_the_lag_is_the_receivers_clock_minus_the_publishers(
    listening: tuple[Metrics, Subscription, str],
) -> None:
    metrics, subscription, campaign_id = listening
    sender = redis.Redis.from_url(REDIS_URL or "")
    try:
        sent = time.time()
        sender.publish(CHANNEL, f"elsewhere@{sent - 2:.6f}:{campaign_id}")  # published 2 s ago
        assert await subscription.wait(10)
        arrived = time.time()
        assert 2 <= remote(metrics, SUM) <= 2 + (arrived - sent)
        sender.publish(CHANNEL, f"skewed@{time.time() + 60:.6f}:{campaign_id}")  # a clock ahead: 0, not -60
        assert await subscription.wait(10)
        assert remote(metrics, COUNT) == 2
        assert 2 <= remote(metrics, SUM) <= 2 + (time.time() - sent)
        sender.publish(CHANNEL, f"older-callstats:{campaign_id}")  # no time: delivered, not timed
        assert await subscription.wait(10)
        assert remote(metrics, COUNT) == 2
    finally:
        sender.close()
