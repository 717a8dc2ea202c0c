"""Redis (the stats route's shared rate limit) stopped or frozen: the stats route fails open, in bounded time.

The policy (src/callstats/ratelimit.py, docs/deployment.md): the limiter must not take
stats reads down with it, so while Redis cannot be reached a read is served without
being counted (RateLimit-Policy is sent, the RateLimit counts are not), after at most
the limiter's socket timeout (0.25 s). When Redis is back, reads are counted again.
A private redis-server, never the shared one.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import Say, issue_key, new_campaign
from tests.reliability.servers import CallstatsServer, PrivateRedis

pytestmark = pytest.mark.reliability

BOUND = 1.0  # seconds: the limiter's 0.25 s socket timeout plus the read itself on a loaded machine


@pytest.fixture
def server(database_url: str, private_redis: PrivateRedis, tmp_path: Path) -> Iterator[CallstatsServer]:
    """callstats with its rate limit in the private Redis."""
    env = {"CALLSTATS_DATABASE_URL": database_url, "CALLSTATS_REDIS_URL": private_redis.url}
    running = CallstatsServer(env, tmp_path)
    running.start()
    yield running
    running.stop()


def timed_reads(base_url: str, key: str, campaign_id: str, count: int) -> list[tuple[httpx.Response, float]]:
    """`count` stats reads in a row, each with the seconds it took."""
    answers = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for _ in range(count):
            started = time.monotonic()
            response = http.get(f"/getCampaignStats/{campaign_id}", headers={"x-api-key": key})
            answers.append((response, time.monotonic() - started))
    return answers


def test_stats_fail_open_while_redis_is_down(
    server: CallstatsServer, private_redis: PrivateRedis, database_url: str, say: Say
) -> None:
    """Killed, then frozen: 200 without counts, within the bound; restarted: counted again."""
    key = issue_key(database_url)
    campaign_id, _phones = new_campaign(server.base_url, key, 3)
    counted = timed_reads(server.base_url, key, campaign_id, 3)
    assert all(r.status_code == 200 and "ratelimit" in r.headers for r, _ in counted)
    private_redis.kill()
    stopped = timed_reads(server.base_url, key, campaign_id, 5)
    private_redis.start()
    recovered = timed_reads(server.base_url, key, campaign_id, 3)
    os.kill(private_redis.pid(), signal.SIGSTOP)
    try:
        frozen = timed_reads(server.base_url, key, campaign_id, 5)
    finally:
        os.kill(private_redis.pid(), signal.SIGCONT)
    after = timed_reads(server.base_url, key, campaign_id, 3)
    say(
        f"Redis stopped: {sorted({r.status_code for r, _ in stopped})} in {max(s for _, s in stopped):.3f} s "
        f"at worst; frozen: {sorted({r.status_code for r, _ in frozen})} in "
        f"{max(s for _, s in frozen):.3f} s at worst; counted again after restart and thaw"
    )
    for response, seconds in stopped + frozen:
        assert response.status_code == 200 and seconds <= BOUND
        assert "ratelimit-policy" in response.headers and "ratelimit" not in response.headers
    assert all(r.status_code == 200 and "ratelimit" in r.headers for r, _ in recovered + after)
