"""The stats route's rate limit: an exact sliding (moving) window per campaign, in memory or in Redis."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Any, NamedTuple

from limits import RateLimitItem, parse
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

from callstats.metrics.instruments import Metrics
from callstats.turns import TurnBatches

log = logging.getLogger("callstats.ratelimit")
POLICY_NAME = "stats"
KEY_PREFIX = "callstats:stats-window:"
REDIS_BATCHES = 4  # script calls in flight at once; the hits arriving meanwhile wait for the next one

# One round trip per batch of hits: for each key in order, expire, count, maybe accept, and return
# what the headers need. KEYS: each hit's campaign list of accepted hits, newest first, in ms of
# Redis' clock (one clock for every process and host; a key may repeat). ARGV: limit, window in ms.
# Returns {allowed 0/1, remaining, ms until more quota} for each key, flattened.
MOVING_WINDOW_HITS = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local replies = {}
for _, key in ipairs(KEYS) do
  local oldest = redis.call('LINDEX', key, -1)
  while oldest and tonumber(oldest) <= now - window do
    redis.call('RPOP', key)
    oldest = redis.call('LINDEX', key, -1)
  end
  local count = redis.call('LLEN', key)
  local allowed = count < limit
  if allowed then
    redis.call('LPUSH', key, now)
    redis.call('PEXPIRE', key, window)
    count = count + 1
    oldest = oldest or now
  end
  local reset = 0
  if oldest then reset = tonumber(oldest) + window - now end
  replies[#replies + 1] = allowed and 1 or 0
  replies[#replies + 1] = limit - count
  replies[#replies + 1] = reset
end
return replies
"""


class Decision(NamedTuple):
    """Whether a request may go on, and the figures the RateLimit headers carry."""

    allowed: bool
    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: int

    def headers(self) -> list[tuple[str, str]]:
        """RateLimit-Policy and RateLimit (IETF httpapi draft), plus Retry-After when refused."""
        headers = [
            ("RateLimit-Policy", f'"{POLICY_NAME}";q={self.limit};w={self.window_seconds}'),
            ("RateLimit", f'"{POLICY_NAME}";r={self.remaining};t={self.reset_seconds}'),
        ]
        if not self.allowed:
            headers.append(("Retry-After", str(max(self.reset_seconds, 1))))
        return headers


class LocalWindows:
    """Exact moving windows kept in this process: per key, the times of the hits accepted in the last window.

    `limits`' in-memory moving window gives the same answers, but schedules expiry work on worker
    threads and shifts a list on every hit; on the stats hot path that cost a fifth of a request.
    """

    def __init__(self, amount: int, seconds: float) -> None:
        self.amount = amount
        self.seconds = seconds
        self.windows: dict[str, deque[float]] = {}

    def hit(self, key: str) -> tuple[bool, int, float]:
        """Count a hit if the window has room: (allowed, remaining, seconds until the oldest hit expires)."""
        now = time.monotonic()
        window = self.windows.setdefault(key, deque())
        while window and window[0] <= now - self.seconds:
            window.popleft()
        allowed = len(window) < self.amount
        if allowed:
            window.append(now)
        return allowed, self.amount - len(window), (window[0] + self.seconds - now) if window else 0.0

    def reset(self) -> None:
        """Forget every count."""
        self.windows.clear()


class RedisWindows:
    """The same windows in Redis, shared by every process.

    The hits that arrive in one event-loop turn go to Redis as one call of one script, which counts
    them in arrival order: one round trip and one pooled connection for all of them. Every hit is
    sent in a batch that starts after it arrived, so batching changes no count. A hung Redis fails
    the batch after the socket timeout (0.25 s unless the URL sets one), with the hits still waiting
    for a free batch; the next hit reconnects. Connections, AUTH, TLS, the database, the protocol and
    reloading a flushed script are redis-py's.
    """

    def __init__(self, redis_url: str, amount: int, seconds: float) -> None:
        timeouts: dict[str, Any] = (
            {} if "timeout=" in redis_url else {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}
        )
        # No retry: a retried timeout would hold stats reads for several timeouts instead of one.
        self.client = Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0), **timeouts)
        self.script = self.client.register_script(MOVING_WINDOW_HITS)
        self.args = (amount, round(seconds * 1000))
        self.batches: TurnBatches[str, list[int]] = TurnBatches(
            self._count, REDIS_BATCHES, lambda exc: isinstance(exc, (RedisConnectionError, RedisTimeout))
        )

    async def hit(self, key: str) -> tuple[bool, int, float]:
        """Like LocalWindows.hit, counted in Redis."""
        allowed, remaining, reset_ms = await self.batches(KEY_PREFIX + key)
        return bool(allowed), int(remaining), int(reset_ms) / 1000

    async def _count(self, keys: list[str]) -> list[list[int]]:
        """One script call for a batch of hits; a hung or gone Redis also fails the hits queued behind it."""
        flat = await self.script(keys=keys, args=self.args)
        return [flat[n : n + 3] for n in range(0, len(flat), 3)]

    async def reset(self) -> None:
        """Forget every count."""
        async for key in self.client.scan_iter(match=KEY_PREFIX + "*", count=1000):
            await self.client.delete(key)

    async def aclose(self) -> None:
        """Close the connections once the batches under way are answered."""
        await self.batches.drain()
        await self.client.aclose()


class StatsRateLimiter:
    """Counts stats reads per campaign; shared across processes when Redis is configured."""

    def __init__(self, limit: str, redis_url: str | None, metrics: Metrics | None = None) -> None:
        self.metrics = metrics  # counts the reads refused (callstats_rate_limited_requests_total)
        self.item: RateLimitItem = parse(limit)
        self.window_seconds = int(self.item.get_expiry())
        self.local = LocalWindows(self.item.amount, self.item.get_expiry())
        self.shared = RedisWindows(redis_url, self.item.amount, self.item.get_expiry()) if redis_url else None

    def policy_header(self) -> tuple[str, str]:
        """The RateLimit-Policy header, known even when the counts are not."""
        return ("RateLimit-Policy", f'"{POLICY_NAME}";q={self.item.amount};w={self.window_seconds}')

    async def hit(self, campaign_id: str) -> Decision | None:
        """Count one read of the campaign; None when the limiter's backend is unreachable (fail open)."""
        if self.shared is None:
            allowed, remaining, reset_in = self.local.hit(campaign_id)
        else:
            try:
                allowed, remaining, reset_in = await self.shared.hit(campaign_id)
            except Exception as exc:  # the limiter must not take stats reads down with it
                log.warning("rate limiter unavailable, request let through: %s", type(exc).__name__)
                return None
        # Clamped: a clock read between the count and now can put the reset a hair past the window.
        reset_seconds = min(math.ceil(reset_in), self.window_seconds)
        if not allowed and self.metrics is not None:
            self.metrics.rate_limited.inc()
        return Decision(allowed, self.item.amount, self.window_seconds, max(remaining, 0), reset_seconds)

    async def reset(self) -> None:
        """Forget every count (tests and operators)."""
        self.local.reset()
        if self.shared is not None:
            await self.shared.reset()

    async def aclose(self) -> None:
        """Close the Redis connections, if any."""
        if self.shared is not None:
            await self.shared.aclose()
