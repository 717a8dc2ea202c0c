"""The dispatcher: an asyncio task of each server process that delivers the outbox, at least once.

Each turn it claims the messages due (alerts/queries.claim_due: on PostgreSQL FOR UPDATE SKIP
LOCKED, so with several processes each message goes to one of them; their next attempt moves a
lease ahead, so a process that dies mid-send leaves them due again), sends them with httpx (10 s
timeout; one endpoint's messages in order, endpoints side by side), and records every attempt: a
2xx delivers the message, anything else (network error, timeout, another status) schedules the next
attempt with exponential backoff and jitter for 24 hours, then fails it. Every
`alert_timer_seconds` it also evaluates what only time changes (alerts/outbox.timed).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from sqlalchemy import Connection

from callstats.alerts import outbox, queries
from callstats.alerts.addresses import private_host
from callstats.alerts.sending import body_of, next_attempt, signed_headers
from callstats.clock import Clock
from callstats.config import Settings
from callstats.db.engine import Database
from callstats.errors import where
from callstats.sealing import SecretBox

T = TypeVar("T")
log = logging.getLogger("callstats.alerts")
TIMEOUT_SECONDS = 10.0
LEASE_MS = 60_000  # longer than a send can take (10 s timeout)
BATCH = 100  # messages claimed per turn
MAX_ERROR_CHARS = 300


class Dispatcher:
    """Delivers the outbox of `db` while `run` runs (the app's lifespan starts it)."""

    def __init__(self, db: Database, box: SecretBox, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.box = box
        self.clock = clock
        self.allow_private = settings.webhook_allow_private
        self.poll_seconds = settings.webhook_poll_seconds
        self.timer_seconds = settings.alert_timer_seconds
        self.base_ms = int(settings.webhook_retry_base_seconds * 1000)
        self._next_timer = 0.0

    async def run(self) -> None:
        """Deliver and evaluate until cancelled; an error (the database away) is logged, then retried."""
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
            while True:
                sent = 0
                try:
                    if time.monotonic() >= self._next_timer:
                        self._next_timer = time.monotonic() + self.timer_seconds
                        await _in_thread(self.evaluate_timed)
                    sent = await self.deliver_due(http)
                except Exception as exc:
                    log.warning("webhook dispatcher turn failed (%s at %s)", type(exc).__name__, where(exc))
                if sent < BATCH:
                    await asyncio.sleep(self.poll_seconds)

    def evaluate_timed(self) -> int:
        """The timed alerts of every account with endpoints (one transaction per account); rows queued."""
        with self.db.read() as conn:
            accounts = queries.accounts_with_endpoints(conn)
        now = self.clock()
        queued = 0
        for account_id in accounts:
            queued += self.db.write(functools.partial(_timed, account_id=account_id, now=now))
        return queued

    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        """Claim the messages due and send them; how many were claimed."""
        now = self.clock()
        claimed = await _in_thread(
            self.db.write, lambda conn: queries.claim_due(conn, now, now + LEASE_MS, BATCH)
        )
        by_endpoint: dict[str, list[Mapping[Any, Any]]] = {}
        for row in claimed:
            by_endpoint.setdefault(row["endpoint_id"], []).append(row)
        await asyncio.gather(*(self._send_in_order(http, rows) for rows in by_endpoint.values()))
        return len(claimed)

    async def _send_in_order(self, http: httpx.AsyncClient, rows: list[Mapping[Any, Any]]) -> None:
        """One endpoint's messages, in order; one that fails unexpectedly (the database away while its
        attempt is recorded) is logged, and stays claimed until its lease runs out (then sent again)."""
        for row in rows:
            try:
                await self.send(http, row)
            except Exception as exc:
                log.warning("webhook delivery not recorded (%s at %s)", type(exc).__name__, where(exc))

    async def send(self, http: httpx.AsyncClient, row: Mapping[Any, Any]) -> None:
        """One attempt at one claimed message, recorded with its outcome."""
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            request = await _in_thread(self._request, row)
            answer = await http.send(request)
            await answer.aclose()
            status_code = answer.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.TimeoutException:
            error = f"timeout after {TIMEOUT_SECONDS:g} s"
        except (httpx.HTTPError, RefusedHost, OSError) as exc:
            error = (str(exc) or type(exc).__name__)[:MAX_ERROR_CHARS]
        duration = int((time.monotonic() - started) * 1000)
        await _in_thread(self._record, row, status_code, error, duration)

    def _request(self, row: Mapping[Any, Any]) -> httpx.Request:
        """The signed request of a message (blocking: the host's name is checked, secrets opened)."""
        url = httpx.URL(row["url"])
        if not self.allow_private:
            problem = private_host(url.host, url.port or (443 if url.scheme == "https" else 80))
            if problem:
                raise RefusedHost(f"refused: {problem}")
        body = body_of(row["payload"], row["format"])
        headers = {"content-type": "application/json"}
        if row["format"] == "standard":
            headers = signed_headers(row["id"], body, self._secrets(row), datetime.now(UTC))
        return httpx.Request(
            "POST", url, content=body, headers={**headers, "user-agent": "callstats-webhooks"}
        )

    def _secrets(self, row: Mapping[Any, Any]) -> list[str]:
        """The endpoint's secret, and the one before it while it still signs."""
        found = [self.box.unseal(row["secret_sealed"])]
        previous, until = row["previous_secret_sealed"], row["previous_until"]
        if previous is not None and until is not None and until > self.clock():
            found.append(self.box.unseal(previous))
        return found

    def _record(
        self, row: Mapping[Any, Any], status_code: int | None, error: str | None, duration: int
    ) -> None:
        now = self.clock()
        attempt = {
            "delivery_id": row["id"],
            "account_id": row["account_id"],
            "attempted_at": now,
            "status_code": status_code,
            "error": error,
            "duration_ms": duration,
        }

        def work(conn: Connection) -> None:
            if error is None:
                queries.record_attempt(conn, attempt, "delivered", None, now)
                return
            retry_at = next_attempt(row["attempts"] + 1, row["created_at"], now, self.base_ms)
            queries.record_attempt(conn, attempt, "pending" if retry_at else "failed", retry_at, None)

        self.db.write(work)


async def _in_thread(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in a worker thread; a cancellation waits for it to end before it is raised, so the
    app's shutdown never disposes of the pool under a transaction still running."""
    future = asyncio.ensure_future(asyncio.to_thread(work, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.wait({future})
            except asyncio.CancelledError:
                continue
        raise


def _timed(conn: Connection, account_id: str, now: int) -> int:
    return outbox.timed(conn, account_id, now)


class RefusedHost(Exception):
    """The endpoint's host is (now) a private address and private hosts are not allowed."""
