"""Live snapshots of campaigns' stats: one watcher per campaign, shared by every stream on it.

A watcher re-reads the counters when the change feed signals the campaign (at
most once per `min_interval`, so bursts coalesce) and, as a safety net for
writers that do not publish, every `poll_seconds`. Each stream has a mailbox of
size one holding only the newest snapshot: a slow reader skips intermediate
numbers and never holds up the watcher, other streams or ingestion.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from anyio.to_thread import run_sync

from callstats.core.counters import Counters
from callstats.db.engine import Database, SqliteChangeProbe
from callstats.errors import CampaignNotFound
from callstats.feed import ChangeFeed
from callstats.metrics.instruments import Metrics
from callstats.stats.service import campaign_counters, stats_body
from callstats.stream.signals import on_exit_signal

log = logging.getLogger("callstats.stream")
WatchKey = tuple[str, str]
REMEMBERED_MAX = 10_000


@dataclass(frozen=True)
class Snapshot:
    """getCampaignStats' body at one moment, and its version (increasing within a process)."""

    version: int
    body: bytes


class Mailbox:
    """One stream's inbox: holds only the latest snapshot."""

    def __init__(self) -> None:
        self.latest: Snapshot | None = None
        self.closed = False
        self._ready = asyncio.Event()

    def offer(self, snapshot: Snapshot) -> None:
        """Replace whatever is waiting with `snapshot`; never blocks."""
        self.latest = snapshot
        self._ready.set()

    def close(self) -> None:
        """End the stream reading this mailbox (the server is shutting down)."""
        self.closed = True
        self._ready.set()

    async def next(self, timeout: float) -> Snapshot | None:
        """The newest snapshot not taken yet; None when `timeout` passed without one or when closed."""
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        self._ready.clear()
        return None if self.closed else self.latest


class StreamHub:
    """Campaign watchers, started with their first stream and stopped with their last."""

    def __init__(
        self,
        db: Database,
        feed: ChangeFeed,
        poll_seconds: float | None = None,
        min_interval: float = 0.15,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics  # callstats_open_streams: the mailboxes open now
        self.feed = feed
        self.poll_seconds = poll_seconds or (0.2 if db.is_sqlite else 1.0)
        self.min_interval = min_interval
        self.probe = SqliteChangeProbe(db) if db.is_sqlite else None
        self._watches: dict[WatchKey, CampaignWatch] = {}
        self._last_version = 0
        # The last snapshot of campaigns nobody watches any more: a client reconnecting to an idle
        # campaign resumes with the same version instead of getting the same numbers again.
        self._remembered: dict[WatchKey, Snapshot] = {}
        self._closing = False
        self._unhook: Callable[[], None] = lambda: None

    def next_version(self) -> int:
        """A version above every earlier one: the wall clock in ms, bumped if it did not move."""
        self._last_version = max(self._last_version + 1, time.time_ns() // 1_000_000)
        return self._last_version

    def read(self, account_id: str, campaign_id: str) -> Counters | None:
        """The campaign's counters now (blocking), or None when the account has no such campaign."""
        return campaign_counters(self.db, account_id, campaign_id)

    async def check(self, account_id: str, campaign_id: str) -> None:
        """404 unless the account has this campaign."""
        if await run_sync(self.read, account_id, campaign_id) is None:
            raise CampaignNotFound()

    @asynccontextmanager
    async def listening(self, account_id: str, campaign_id: str) -> AsyncIterator[Mailbox]:
        """A mailbox that receives the campaign's current snapshot, then each new one."""
        key = (account_id, campaign_id)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = CampaignWatch(self, account_id, campaign_id)
        mailbox = Mailbox()
        watch.join(mailbox)
        if self._closing:
            mailbox.close()
        if self.metrics is not None:
            self.metrics.open_streams.inc()
        try:
            yield mailbox
        finally:
            if self.metrics is not None:
                self.metrics.open_streams.dec()
            if watch.leave(mailbox):
                self._watches.pop(key, None)
                self.remember(key, watch.current)

    def remember(self, key: WatchKey, snapshot: Snapshot | None) -> None:
        """Keep a stopped watcher's last snapshot (a bounded memory)."""
        if snapshot is None:
            return
        if len(self._remembered) >= REMEMBERED_MAX:
            self._remembered.clear()
        self._remembered[key] = snapshot

    def forget(self, key: WatchKey) -> None:
        """Drop the last snapshot kept of a deleted campaign."""
        self._remembered.pop(key, None)

    def remembered(self, key: WatchKey) -> Snapshot | None:
        """The last snapshot of a campaign no watcher had, if any."""
        return self._remembered.pop(key, None)

    async def start(self) -> None:
        """End open streams as soon as the server is asked to stop (the app starts the change feed)."""
        self._unhook = on_exit_signal(self.end_streams)

    def end_streams(self) -> None:
        """Close every open stream (a server waits for open responses before it shuts down)."""
        self._closing = True
        for watch in self._watches.values():
            for mailbox in watch.mailboxes:
                mailbox.close()

    async def close(self) -> None:
        """End the streams and stop every watcher (the app stops the change feed after this)."""
        self._unhook()
        self.end_streams()
        watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            watch.stop()
        await asyncio.gather(*(w.task for w in watches), return_exceptions=True)
        if self.probe is not None:
            self.probe.close()


class CampaignWatch:
    """Reads one campaign's numbers when they may have changed and hands new ones to its mailboxes."""

    def __init__(self, hub: StreamHub, account_id: str, campaign_id: str) -> None:
        self.hub = hub
        self.account_id = account_id
        self.campaign_id = campaign_id
        self.mailboxes: set[Mailbox] = set()
        self.current: Snapshot | None = None
        self._earlier = hub.remembered((account_id, campaign_id))
        self.subscription = hub.feed.subscribe(campaign_id)
        self._seen_version: Any = None
        self._sent_at = -math.inf
        self.task = asyncio.create_task(self._run())

    def join(self, mailbox: Mailbox) -> None:
        """Add a stream: it gets the current snapshot now and a fresh read right after."""
        self.mailboxes.add(mailbox)
        if self.current is not None:
            mailbox.offer(self.current)
            self.subscription.notify()

    def leave(self, mailbox: Mailbox) -> bool:
        """Remove a stream; True (and the watcher stops) when it was the last one."""
        self.mailboxes.discard(mailbox)
        if self.mailboxes:
            return False
        self.stop()
        return True

    def stop(self) -> None:
        """Stop reading and unsubscribe."""
        self.task.cancel()
        self.subscription.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            try:
                await self._refresh()
                failing = False
            except Exception as exc:  # the database may be back on the next try; streams keep their pings
                if not failing:
                    log.warning(
                        "stream: reading campaign %s failed (%s)", self.campaign_id, type(exc).__name__
                    )
                failing = True
            while not await self.subscription.wait(self.hub.poll_seconds):
                if self._may_have_changed():
                    break
            # Coalesce from the last message sent, not the last read: a poll that found nothing new
            # must not delay the next change.
            rest = self.hub.min_interval - (loop.time() - self._sent_at)
            if rest > 0:
                await asyncio.sleep(rest)

    def _may_have_changed(self) -> bool:
        """On a poll tick: False only when SQLite says nothing was committed since the last read."""
        probe = self.hub.probe
        try:
            return probe is None or probe.version() != self._seen_version
        except Exception:  # unsure: read
            return True

    async def _refresh(self) -> None:
        if self.hub.probe is not None:
            self._seen_version = self.hub.probe.version()
        found = await run_sync(self.hub.read, self.account_id, self.campaign_id)
        if found is None:  # deleted (deleteCampaign): its streams end, and nothing of it is remembered
            self.hub.forget((self.account_id, self.campaign_id))
            self.current = self._earlier = None
            for mailbox in self.mailboxes:
                mailbox.close()
            return
        body = stats_body(found)
        if self.current is not None and self.current.body == body:
            return
        if self._earlier is not None and self._earlier.body == body:
            self.current = self._earlier  # unchanged since the last watcher stopped: same version
        else:
            self.current = Snapshot(self.hub.next_version(), body)
        self._earlier = None
        for mailbox in self.mailboxes:
            mailbox.offer(self.current)
        self._sent_at = asyncio.get_running_loop().time()
