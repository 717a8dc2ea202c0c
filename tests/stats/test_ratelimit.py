"""The stats route's rate limit: per campaign, sliding window, headers, who counts, shared via Redis."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis

from callstats.accounts import keys
from callstats.accounts.service import create_key, revoke_key
from callstats.app import CallstatsApp, create_app
from callstats.config import Settings
from callstats.ratelimit import MOVING_WINDOW_HITS, StatsRateLimiter
from tests.conftest import REDIS_URL, new_campaign
from tests.reliability.servers import PrivateRedis
from tests.tools import needs_redis_server

LIMIT = 5
NEEDS_REDIS = pytest.mark.skipif(not REDIS_URL, reason="no CALLSTATS_TEST_REDIS_URL")
MOVING_WINDOW_SHA = hashlib.sha1(MOVING_WINDOW_HITS.encode()).hexdigest()
POLICY = re.compile(r'^"(?P<name>[^"]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')
STATE = re.compile(r'^"(?P<name>[^"]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The test settings with a small stats limit."""
    return Settings(
        database_url=database_url, redis_url=None, counter_slots=4, stats_rate_limit=f"{LIMIT}/minute"
    )


def remaining(response: httpx.Response) -> int:
    """The `r` of the RateLimit header, after checking both headers' shape."""
    policy = POLICY.match(response.headers["ratelimit-policy"])
    state = STATE.match(response.headers["ratelimit"])
    assert policy and state, response.headers
    assert policy["name"] == state["name"]
    assert (int(policy["q"]), int(policy["w"])) == (LIMIT, 60)
    assert 0 <= int(state["t"]) <= 60
    return int(state["r"])


async def read_stats(client: httpx.AsyncClient, headers: dict[str, str], campaign_id: str) -> httpx.Response:
    """One stats read."""
    return await client.get(f"/getCampaignStats/{campaign_id}", headers=headers)


async def test_sixth_request_is_429_with_headers(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Five reads pass with a falling remaining count; the sixth is a 429 with Retry-After."""
    campaign_id = await new_campaign(client, auth)
    answers = [await read_stats(client, auth, campaign_id) for _ in range(LIMIT)]
    assert [r.status_code for r in answers] == [200] * LIMIT
    assert [remaining(r) for r in answers] == list(range(LIMIT - 1, -1, -1))
    assert all("retry-after" not in r.headers for r in answers)
    refused = await read_stats(client, auth, campaign_id)
    assert refused.status_code == 429
    reset = STATE.match(refused.headers["ratelimit"])
    assert reset, refused.headers
    assert refused.json() == {
        "success": False,
        "message": f"Rate limit exceeded for this campaign; retry in {reset['t']} s",
        "error": "RATE_LIMITED",
    }
    assert remaining(refused) == 0
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await read_stats(client, auth, campaign_id)).status_code == 429


async def test_headers_on_304(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A revalidation (304) carries the limit headers and counts like any read."""
    campaign_id = await new_campaign(client, auth)
    first = await read_stats(client, auth, campaign_id)
    revalidated = await read_stats(client, {**auth, "if-none-match": first.headers["etag"]}, campaign_id)
    assert revalidated.status_code == 304
    assert remaining(revalidated) == remaining(first) - 1


async def test_requests_that_may_not_read_do_not_use_the_quota(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Bad, revoked and foreign keys, and malformed ids, leave the owner's quota whole."""
    campaign_id = await new_campaign(client, auth)
    revoked = create_key(app.db, "acme")
    revoke_key(app.db, revoked.key_id)
    good = auth["x-api-key"]
    intruders = [
        {},
        {"x-api-key": good[:-1] + ("0" if good[-1] != "0" else "1")},
        {"x-api-key": keys.generate().plaintext},
        {"x-api-key": revoked.plaintext},
        {"x-api-key": make_key("globex")},
        {"x-api-key": make_key("globex", "read")},
    ]
    for _ in range(2):
        for headers in intruders:
            response = await read_stats(client, headers, campaign_id)
            assert response.status_code in (401, 404), response.text
            assert "ratelimit" not in response.headers
    for _ in range(LIMIT + 1):
        assert (await client.get(f"/getCampaignStats/{campaign_id}x", headers=auth)).status_code == 400
    owner = [await read_stats(client, auth, campaign_id) for _ in range(LIMIT)]
    assert [r.status_code for r in owner] == [200] * LIMIT


async def test_nonexistent_campaign_is_404_not_429(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Reads of a campaign that does not exist are never rate limited into revealing anything."""
    missing = str(uuid.uuid4())
    answers = [(await read_stats(client, auth, missing)).status_code for _ in range(LIMIT + 2)]
    assert answers == [404] * (LIMIT + 2)


async def test_limit_is_per_campaign_not_per_key(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """All of the owner's keys share one campaign's quota; another campaign has its own."""
    first, second = await new_campaign(client, auth), await new_campaign(client, auth)
    reader = {"x-api-key": make_key("acme", "read")}
    statuses = [
        (await read_stats(client, auth if n % 2 else reader, first)).status_code for n in range(LIMIT + 1)
    ]
    assert statuses == [200] * LIMIT + [429]
    assert (await read_stats(client, reader, second)).status_code == 200
    assert remaining(await read_stats(client, auth, second)) == LIMIT - 2


async def test_other_routes_are_not_limited(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Only the stats route is limited: getCampaign on an exhausted campaign still answers."""
    campaign_id = await new_campaign(client, auth)
    for _ in range(LIMIT + 1):
        await read_stats(client, auth, campaign_id)
    response = await client.get(f"/getCampaign/{campaign_id}", headers=auth)
    assert response.status_code == 200
    assert "ratelimit" not in response.headers


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[CallstatsApp, httpx.AsyncClient]]:
    """An app of its own and a client talking to it."""
    application = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://callstats.test"
        ) as http:
            yield application, http
    finally:
        await application.aclose()


@pytest.mark.parametrize("shared", [False, pytest.param(True, marks=NEEDS_REDIS)], ids=["memory", "redis"])
async def test_window_slides(database_url: str, shared: bool) -> None:
    """Quota comes back one request at a time as each ages out, not all at once at a boundary."""
    settings = Settings(
        database_url=database_url, redis_url=REDIS_URL if shared else None, stats_rate_limit="2/second"
    )
    async with serving(settings) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme").plaintext}
        campaign_id = await new_campaign(http, auth)
        start = time.monotonic()
        assert (await read_stats(http, auth, campaign_id)).status_code == 200
        await asyncio.sleep(0.5)
        assert (await read_stats(http, auth, campaign_id)).status_code == 200
        assert (await read_stats(http, auth, campaign_id)).status_code == 429
        await asyncio.sleep(max(0.0, 1.1 - (time.monotonic() - start)))
        assert (await read_stats(http, auth, campaign_id)).status_code == 200  # the first has aged out
        if time.monotonic() - start < 1.4:  # the second is still inside the window
            assert (await read_stats(http, auth, campaign_id)).status_code == 429


@NEEDS_REDIS
async def test_redis_limit_holds_across_processes(database_url: str) -> None:
    """Two app instances (two processes' worth of state) on one Redis share one limit per campaign."""
    settings = Settings(database_url=database_url, redis_url=REDIS_URL, stats_rate_limit=f"{LIMIT}/minute")
    async with AsyncExitStack() as stack:
        app_one, one = await stack.enter_async_context(serving(settings))
        _, two = await stack.enter_async_context(serving(settings))
        auth = {"x-api-key": create_key(app_one.db, "acme").plaintext}
        campaign_id = await new_campaign(one, auth)  # a new uuid: no other run shares its counts
        other_campaign = await new_campaign(two, auth)
        statuses = []
        for n in range(LIMIT):
            response = await read_stats(one if n % 2 else two, auth, campaign_id)
            statuses.append(response.status_code)
            assert remaining(response) == LIMIT - 1 - n
        assert statuses == [200] * LIMIT
        for client in (one, two):
            refused = await read_stats(client, auth, campaign_id)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
        assert (await read_stats(two, auth, other_campaign)).status_code == 200
        bad = {"x-api-key": keys.generate().plaintext}
        for _ in range(LIMIT):
            await read_stats(one, bad, other_campaign)
        assert remaining(await read_stats(one, auth, other_campaign)) == LIMIT - 2


async def _silent_server() -> tuple[asyncio.Server, int]:
    """A TCP server that accepts and reads but never answers (a hung Redis)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@NEEDS_REDIS
async def test_many_hits_in_one_turn_get_distinct_counts() -> None:
    """Hits sent together (one pipeline) are each counted once, in order, each with its own remaining."""
    assert REDIS_URL
    limiter = StatsRateLimiter("30/minute", REDIS_URL)
    campaign, other = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        decisions = await asyncio.gather(*(limiter.hit(campaign) for _ in range(40)), limiter.hit(other))
        assert all(d is not None for d in decisions)
        ours = [d for d in decisions[:40] if d is not None]
        assert sorted(d.remaining for d in ours if d.allowed) == list(range(30))
        assert [d.allowed for d in ours].count(False) == 10
        assert all(d.remaining == 0 and d.reset_seconds >= 1 for d in ours if not d.allowed)
        assert decisions[40] is not None and decisions[40].remaining == 29
    finally:
        await limiter.aclose()


@asynccontextmanager
async def private_limiter() -> AsyncIterator[tuple[StatsRateLimiter, Redis]]:
    """A limiter of LIMIT per minute on a redis-server of the test's own, and an admin client on it.

    The test may flush that server's scripts or kill its connections: the shared Redis (and every
    other client of it) is never touched.
    """
    server = PrivateRedis()
    server.start()
    limiter = StatsRateLimiter(f"{LIMIT}/minute", server.url)
    admin = Redis.from_url(server.url)
    try:
        yield limiter, admin
    finally:
        await limiter.aclose()
        await admin.aclose()
        server.kill()


@needs_redis_server
async def test_script_flushed_from_redis_still_counts() -> None:
    """After SCRIPT FLUSH (a restarted Redis), the script is loaded again and the count goes on."""
    campaign = str(uuid.uuid4())
    async with private_limiter() as (limiter, admin):
        first = await limiter.hit(campaign)
        await admin.script_flush()
        assert await admin.script_exists(MOVING_WINDOW_SHA) == [False]
        after = await asyncio.gather(limiter.hit(campaign), limiter.hit(campaign))
        assert first is not None and first.remaining == LIMIT - 1
        assert sorted(d.remaining for d in after if d is not None) == [LIMIT - 3, LIMIT - 2]
        assert await admin.script_exists(MOVING_WINDOW_SHA) == [True]


async def test_hung_redis_fails_open_within_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """No answer within socket_timeout: every waiting hit is let through (None), none waits longer."""
    server, port = await _silent_server()
    async with server:
        url = f"redis://:s3cret@127.0.0.1:{port}/0?socket_timeout=0.2&socket_connect_timeout=0.2"
        limiter = StatsRateLimiter(f"{LIMIT}/minute", url)
        try:
            started = time.monotonic()
            first = await asyncio.gather(*(limiter.hit("c") for _ in range(20)))
            await asyncio.sleep(0)
            second = await asyncio.gather(*(limiter.hit("c") for _ in range(5)))
            assert first == [None] * 20 and second == [None] * 5
            assert time.monotonic() - started < 1.0
        finally:
            await limiter.aclose()
    assert "rate limiter unavailable" in caplog.text and "s3cret" not in caplog.text


async def test_unreachable_redis_fails_open_at_once() -> None:
    """Nobody listening: the hit is let through at once."""
    server, port = await _silent_server()
    server.close()
    await server.wait_closed()
    limiter = StatsRateLimiter(f"{LIMIT}/minute", f"redis://127.0.0.1:{port}/0")
    try:
        started = time.monotonic()
        assert await limiter.hit("c") is None
        assert time.monotonic() - started < 0.5
    finally:
        await limiter.aclose()


@needs_redis_server
async def test_counts_resume_after_the_connection_is_lost() -> None:
    """When Redis drops the limiter's connections, the next hits reconnect and the count goes on."""
    campaign = str(uuid.uuid4())
    async with private_limiter() as (limiter, admin):
        first = await limiter.hit(campaign)
        assert first is not None and first.remaining == LIMIT - 1
        await admin.client_setname("callstats-test-admin")
        for client in await admin.client_list():
            if client["name"] != "callstats-test-admin" and "evalsha" in client["cmd"]:
                await admin.client_kill_filter(_id=client["id"])
        later = [await limiter.hit(campaign) for _ in range(2)]
        counted = [d.remaining for d in later if d is not None]
        assert counted and counted[-1] == LIMIT - 1 - len(counted)
