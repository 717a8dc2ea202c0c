"""The stats route's rate limit: a sliding (moving) window per campaign, in memory or in Redis."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool

log = logging.getLogger("callstats.ratelimit")
POLICY_NAME = "stats"


@dataclass(frozen=True)
class Decision:
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


class StatsRateLimiter:
    """Counts stats reads per campaign; shared across processes when Redis is configured."""

    def __init__(self, limit: str, redis_url: str | None) -> None:
        self.item: RateLimitItem = parse(limit)
        # Our own pool, so shutdown can close it (the library offers no close).
        self.pool = _pool(redis_url) if redis_url else None
        self.storage: Storage = MemoryStorage()
        if redis_url:
            options: dict[str, Any] = {"connection_pool": self.pool}
            self.storage = RedisStorage(
                _async_uri(redis_url), implementation="redispy", key_prefix="callstats", **options
            )
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.window_seconds = int(self.item.get_expiry())
        self.local = None if redis_url else LocalWindows(self.item.amount, self.item.get_expiry())

    def policy_header(self) -> tuple[str, str]:
        """The RateLimit-Policy header, known even when the counts are not."""
        return ("RateLimit-Policy", f'"{POLICY_NAME}";q={self.item.amount};w={self.window_seconds}')

    async def hit(self, campaign_id: str) -> Decision | None:
        """Count one read of the campaign; None when the limiter's backend is unreachable (fail open)."""
        if self.local is not None:
            allowed, remaining, reset_in = self.local.hit(campaign_id)
            return Decision(allowed, self.item.amount, self.window_seconds, remaining, math.ceil(reset_in))
        try:
            allowed = await self.limiter.hit(self.item, campaign_id)
            stats = await self.limiter.get_window_stats(self.item, campaign_id)
        except Exception as exc:  # the limiter must not take stats reads down with it
            log.warning("rate limiter unavailable, request let through: %s", type(exc).__name__)
            return None
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, self.item.amount, self.window_seconds, max(stats.remaining, 0), reset)

    async def reset(self) -> None:
        """Forget every count (tests and operators)."""
        if self.local is not None:
            self.local.reset()
        await self.storage.reset()

    async def aclose(self) -> None:
        """Close the Redis connections, if any."""
        if self.pool is not None:
            await self.pool.aclose()


def _pool(redis_url: str) -> ConnectionPool:
    """A Redis pool whose calls give up quickly: a hung Redis must not stall stats reads (they fail open)."""
    timeouts = {} if "timeout=" in redis_url else {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}
    return ConnectionPool.from_url(redis_url, **timeouts)


def _async_uri(redis_url: str) -> str:
    return redis_url if redis_url.startswith("async+") else "async+" + redis_url
