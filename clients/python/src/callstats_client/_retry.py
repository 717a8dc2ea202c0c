"""When to send a request again, and after how long: the rules Client and AsyncClient share.

- 429 RATE_LIMITED: always (the server refused the request before doing anything), after Retry-After.
- 503 SERVICE_UNAVAILABLE: for repeatable requests, after Retry-After.
- A connection that could not be opened (nothing was sent): every request, with back-off.
- A connection that broke once the request was sent (the server may have acted on it): repeatable
  requests only (every GET; recordCallEvents, idempotent by event_id), with back-off.

Each kind is bounded (RetryPolicy); a Retry-After longer than `max_retry_after` is not waited for, the
error is raised at once with its `retry_after`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from callstats_client.errors import ApiError, RateLimited, ServiceUnavailable

# Errors raised before any byte of the request left: safe to retry whatever the request does.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and how long, the client retries.

    `max_retries`: connection errors per request (back-off `backoff`, doubled each time, at most
    `max_backoff` seconds). `max_status_retries`: 429/503 answers per request, each after its
    Retry-After (`default_retry_after` seconds when the answer has none). `max_stream_reconnects`:
    consecutive failed reconnections of a live stream before `stream_stats` gives up.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_status_retries: int = 3
    max_retry_after: float = 60.0
    default_retry_after: float = 1.0
    max_stream_reconnects: int = 10

    def backoff_delay(self, retries_so_far: int) -> float:
        """The wait before retry number `retries_so_far + 1` after a connection error."""
        return float(min(self.max_backoff, self.backoff * 2**retries_so_far))

    def after_transport_error(
        self, error: httpx.TransportError, repeatable: bool, retries: int
    ) -> float | None:
        """Seconds to wait before sending again after `error`, or None to give up."""
        if retries >= self.max_retries or not (repeatable or isinstance(error, NOT_SENT)):
            return None
        return self.backoff_delay(retries)

    def after_answer(self, error: ApiError, repeatable: bool, retries: int) -> float | None:
        """Seconds to wait before sending again after the error answer `error`, or None to give up."""
        if retries >= self.max_status_retries:
            return None
        if not isinstance(error, RateLimited) and not (isinstance(error, ServiceUnavailable) and repeatable):
            return None
        wait = self.default_retry_after if error.retry_after is None else error.retry_after
        return None if wait > self.max_retry_after else wait


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """Told to the client's `on_retry` before each wait: the operation (its operationId), which retry
    this is (1 for the first), the wait in seconds, and why (an HTTP status or a transport error)."""

    operation: str
    retry: int
    delay: float
    status: int | None
    reason: str


OnRetry = Callable[[RetryNotice], None]


def describe(error: httpx.TransportError) -> str:
    """A transport error in a few words: its class and message."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
