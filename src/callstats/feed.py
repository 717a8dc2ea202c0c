"""The change feed: "campaign X changed" signals, fanned out in-process and across processes.

Writers call `publish(campaign_id)` after their transaction committed; it never
blocks (a background thread relays it to Redis or PostgreSQL). Readers hold a
`Subscription`: a flag, not a queue, so a burst of changes wakes them once.
Other processes' signals arrive through Redis pub/sub when a Redis URL is set,
else through PostgreSQL LISTEN/NOTIFY on a PostgreSQL database, else not at all
(SQLite in one process: the stream's poll covers writers that do not publish).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from time import perf_counter
from typing import Any, Protocol

from sqlalchemy import make_url, text

from callstats.config import sqlalchemy_url
from callstats.db.engine import Database
from callstats.metrics.instruments import Metrics

log = logging.getLogger("callstats.feed")
CHANNEL = "callstats_changes"
_RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
PUBLISHER_IDLE_SECONDS = 2.0
# At most one relay send per this interval: signals published meanwhile go out together, each campaign
# once. A write group commits every few ms under load, and a NOTIFY (or PUBLISH) per commit cost a
# transaction, a wake-up of every listening backend and a parse in every process, for streams that send
# at most one message per 150 ms anyway (CALLSTATS_STREAM_MIN_INTERVAL_SECONDS).
RELAY_INTERVAL_SECONDS = 0.05
STOP_SECONDS = 5.0  # the longest `stop` waits for the listener to end


class Relay(Protocol):
    """A cross-process transport: send signals from a thread, receive them on the event loop."""

    def send(self, message: str) -> None:
        """Deliver one message to every process (blocking; runs on the feed's publisher thread)."""

    def receive(self) -> AsyncIterator[str]:
        """Every message any process sends, until cancelled; raises when the connection drops."""

    def close(self) -> None:
        """Release the sending side's connection."""


class Subscription:
    """One reader's wake-up flag for one campaign; holds at most one pending signal."""

    def __init__(self, feed: ChangeFeed, campaign_id: str) -> None:
        self.feed = feed
        self.campaign_id = campaign_id
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Mark the campaign changed (on the event loop's thread)."""
        self._changed.set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for a change signal (consuming it); False when `timeout` passed without one."""
        if not self._changed.is_set():
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                return False
        self._changed.clear()
        return True

    def close(self) -> None:
        """Stop receiving signals."""
        self.feed.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._signals()

    async def _signals(self) -> AsyncIterator[str]:
        while True:
            await self.wait()
            yield self.campaign_id


class ChangeFeed:
    """Publish campaign changes from any thread; subscribe to them on the event loop.

    With `metrics`, each signal delivered records its lag (callstats_feed_lag_seconds): `local`, from
    `publish` to this process's subscribers (the stream hub's watchers; monotonic clock, only when
    someone subscribes to the campaign), and `remote`, from another process's `publish` to its
    arrival here through the relay (the publisher's wall clock travels in the message, so across
    hosts the figure includes their clocks' offset).
    """

    def __init__(self, relay: Relay | None = None, metrics: Metrics | None = None) -> None:
        self.relay = relay
        self.metrics = metrics
        self.origin = uuid.uuid4().hex[:12]
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: queue.SimpleQueue[tuple[str, float] | None] = queue.SimpleQueue()  # (campaign, wall s)
        self._publisher: threading.Thread | None = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._failing = False

    def publish(self, campaign_id: str) -> None:
        """Signal that a campaign's numbers may have changed; thread-safe and never blocking."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop closed in between: nobody left to tell here
                loop.call_soon_threadsafe(self._deliver, campaign_id, perf_counter())
        if self.relay is not None:
            # before _ensure_publisher: an idle publisher never strands it
            self._outbox.put((campaign_id, time.time()))
            self._ensure_publisher()

    def publish_many(self, campaign_ids: Iterable[str]) -> None:
        """`publish` each campaign once."""
        for campaign_id in set(campaign_ids):
            self.publish(campaign_id)

    def subscribe(self, campaign_id: str) -> Subscription:
        """A new subscription to one campaign's changes (starts the feed on first use)."""
        self._bind_loop()
        subscription = Subscription(self, campaign_id)
        self._subscriptions.setdefault(campaign_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription."""
        subscribers = self._subscriptions.get(subscription.campaign_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[subscription.campaign_id]

    async def start(self) -> None:
        """Bind to the running event loop and start listening to other processes."""
        self._bind_loop()

    async def stop(self) -> None:
        """Stop listening to other processes and flush the signals not relayed yet."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await cancelled(listener)
        await asyncio.to_thread(self.close)
        self._loop = None

    def close(self) -> None:
        """Stop the publisher thread once it has relayed what is queued (blocking, at most a few s)."""
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            self._outbox.put(None)
            publisher.join(5)
        if self.relay is not None:
            self.relay.close()

    def _bind_loop(self) -> None:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
            self._listener = None
        if self.relay is not None and self._listener is None:
            self._listener = self._loop.create_task(self._listen(self.relay))

    def _deliver(self, campaign_id: str, published: float | None = None) -> None:
        """Wake the campaign's subscribers; `published` is the perf_counter time of a local publish."""
        subscribers = self._subscriptions.get(campaign_id)
        if not subscribers:
            return
        for subscription in tuple(subscribers):
            subscription.notify()
        if published is not None and self.metrics is not None:
            self.metrics.feed_delivered("local", perf_counter() - published)

    def _deliver_all(self) -> None:
        for campaign_id in tuple(self._subscriptions):
            self._deliver(campaign_id)

    def _ensure_publisher(self) -> None:
        with self._lock:
            if self._publisher is None:
                self._publisher = threading.Thread(
                    target=self._relay_outbox, name="callstats-feed", daemon=True
                )
                self._publisher.start()

    def _relay_outbox(self) -> None:
        """Publisher thread: send queued signals, at most once per RELAY_INTERVAL_SECONDS (a burst
        coalesced per campaign: the first signal after a quiet spell leaves at once); exit when idle."""
        assert self.relay is not None
        last_sent = -RELAY_INTERVAL_SECONDS
        while True:
            try:
                first = self._outbox.get(timeout=PUBLISHER_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._outbox.empty():
                        self._publisher = None
                        self.relay.close()
                        return
                continue
            if first is not None:  # a stop (None) flushes at once
                time.sleep(max(0.0, last_sent + RELAY_INTERVAL_SECONDS - time.monotonic()))
            pending = [first]
            while not self._outbox.empty():
                pending.append(self._outbox.get_nowait())
            self._send_all(_earliest(p for p in pending if p is not None))
            last_sent = time.monotonic()
            if None in pending:
                return

    def _send_all(self, published: dict[str, float]) -> None:
        """Send one signal per campaign: `origin@published:campaign` (a reader that knows no `@` part
        still finds the origin different from its own and the campaign after the first colon)."""
        assert self.relay is not None
        for campaign_id, at in published.items():
            try:
                self.relay.send(f"{self.origin}@{at:.6f}:{campaign_id}")
            except Exception as exc:  # a lost signal is covered by the stream's poll
                if not self._failing:  # once per outage, not once per write
                    log.warning(
                        "change feed: cannot publish (%s); streams fall back to polling", type(exc).__name__
                    )
                self._failing = True
            else:
                if self._failing:
                    log.warning("change feed: publishing again")
                self._failing = False

    async def _listen(self, relay: Relay) -> None:
        """Receive other processes' signals, reconnecting with back-off when the connection drops."""
        failures = 0
        while True:
            try:
                async for message in relay.receive():
                    failures = 0
                    self._received(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG  # once per outage
                log.log(
                    level, "change feed: not listening (%s), retrying in %.1f s", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                self._deliver_all()  # changes may have been missed while disconnected

    def _received(self, message: str) -> None:
        """Deliver another process's signal (`origin[@published]:campaign`) and record its lag."""
        sender, _, campaign_id = message.partition(":")
        origin, _, published = sender.partition("@")
        if origin == self.origin:
            return
        self._deliver(campaign_id)
        if published and self.metrics is not None:
            with suppress(ValueError):
                self.metrics.feed_delivered("remote", time.time() - float(published))


def _earliest(published: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Each campaign once, with its earliest publish time (a burst coalesced into one signal)."""
    earliest: dict[str, float] = {}
    for campaign_id, at in published:
        earliest[campaign_id] = min(at, earliest.get(campaign_id, at))
    return earliest


async def cancelled(task: asyncio.Task[Any], within: float = STOP_SECONDS) -> None:
    """Cancel `task` and wait until it has ended, cancelling it again while it runs (at most `within` s).

    One cancel is not always enough: on Python 3.11, `asyncio.wait_for` returns its inner call's result
    and drops the cancellation when both arrive together, and redis-py's send uses it, so a listener
    cancelled while subscribing carried on reading for ever and the server's shutdown never ended.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.1, max(deadline - loop.time(), 0)))
        if loop.time() >= deadline and not task.done():
            log.warning(
                "task %s did not stop within %g s of its cancellation: left behind", task.get_name(), within
            )
            return
    if not task.cancelled():
        task.exception()  # retrieved: an error on the way out is not worth a warning at shutdown


class RedisRelay:
    """Signals over Redis pub/sub."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._client: Any = None

    def send(self, message: str) -> None:
        """PUBLISH the message."""
        import redis

        if self._client is None:
            self._client = redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            self._client.publish(CHANNEL, message)
        except Exception:
            self._client.close()
            self._client = None
            raise

    async def receive(self) -> AsyncIterator[str]:
        """SUBSCRIBE and yield each message."""
        import redis.asyncio

        # A partition leaves a quiet subscription open: pinging every 30 s finds it dead and reconnects.
        client = redis.asyncio.Redis.from_url(
            self.redis_url, socket_connect_timeout=2, socket_keepalive=True, health_check_interval=30
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            while True:
                message = await pubsub.get_message(timeout=30.0)
                if message is not None and message["type"] == "message":
                    yield message["data"].decode()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed in newer redis-py
            await client.aclose()

    def close(self) -> None:
        """Close the publishing connection."""
        if self._client is not None:
            self._client.close()
            self._client = None


class PostgresRelay:
    """Signals over PostgreSQL LISTEN/NOTIFY (sent on the app's pool, received on a connection of its own)."""

    def __init__(self, db: Database) -> None:
        url = make_url(sqlalchemy_url(db.url)).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.db = db

    def send(self, message: str) -> None:
        """NOTIFY through pg_notify."""
        with self.db.engine.connect() as conn:
            conn.execute(
                text("SELECT pg_notify(:channel, :message)"), {"channel": CHANNEL, "message": message}
            )
            conn.commit()

    async def receive(self) -> AsyncIterator[str]:
        """LISTEN and yield each notification's payload."""
        import psycopg

        # A partition leaves a quiet LISTEN open: TCP keepalives (and tcp_user_timeout for unacknowledged
        # data) find it dead within about a minute, and _listen reconnects (libpq connection parameters).
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=2,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            tcp_user_timeout=60_000,
        )
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            async for notification in conn.notifies():
                yield notification.payload
        finally:
            await conn.close()

    def close(self) -> None:
        """Nothing to release: notifications are sent on the app's pool."""


def relay_for(db: Database, redis_url: str | None) -> Relay | None:
    """Redis when configured, else PostgreSQL's LISTEN/NOTIFY, else none (SQLite: one process)."""
    if redis_url:
        return RedisRelay(redis_url)
    if not db.is_sqlite:
        return PostgresRelay(db)
    return None
