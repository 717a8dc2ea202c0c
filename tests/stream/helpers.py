"""Helpers for tests against real server processes: a stream reader on a thread, keys, events."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from callstats.accounts.service import create_key
from callstats.db.engine import Database
from callstats.watch import SseEvent, stream_events
from tests.servers import ServerProcess, server_env, start_server

Arrival = tuple[float, SseEvent]


class StreamReader:
    """Reads one campaign's stats stream on a thread; each event lands in a queue with its arrival time."""

    def __init__(self, base_url: str, key: str, campaign_id: str, last_event_id: str | None = None) -> None:
        self.campaign_id = campaign_id
        self.last_event_id = last_event_id
        self.client = httpx.Client(
            base_url=base_url, headers={"x-api-key": key}, timeout=httpx.Timeout(10.0, read=60.0)
        )
        self.arrivals: queue.Queue[Arrival | BaseException] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in stream_events(self.client, self.campaign_id, self.last_event_id):
                self.arrivals.put((time.monotonic(), event))
        except BaseException as exc:  # handed to the test thread
            self.arrivals.put(exc)
        else:
            self.arrivals.put(EOFError("the server ended the stream"))

    def next_event(self, timeout: float = 10.0) -> Arrival:
        """The next event or comment, with its arrival time (monotonic)."""
        item = self.arrivals.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def next_stats(self, timeout: float = 10.0) -> Arrival:
        """The next `stats` event (pings skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            arrival = self.next_event(max(0.01, deadline - time.monotonic()))
            if arrival[1].event == "stats":
                return arrival

    def stats_until(self, wanted: dict[str, Any], timeout: float = 10.0) -> Arrival:
        """The first `stats` event whose data contains every field of `wanted`."""
        deadline = time.monotonic() + timeout
        while True:
            arrival = self.next_stats(max(0.01, deadline - time.monotonic()))
            data = stats_data(arrival[1])
            if all(data.get(name) == value for name, value in wanted.items()):
                return arrival

    def close(self) -> None:
        """Drop the connection and wait for the thread (which notices at the next ping or message)."""
        self.client.close()
        self.thread.join(timeout=10)


def stats_data(event: SseEvent) -> dict[str, Any]:
    """The stats object a `stats` event carries."""
    import json

    data: dict[str, Any] = json.loads(event.data)["data"]
    return data


@contextlib.contextmanager
def reading(
    base_url: str, key: str, campaign_id: str, last_event_id: str | None = None
) -> Iterator[StreamReader]:
    """A StreamReader, closed on the way out."""
    reader = StreamReader(base_url, key, campaign_id, last_event_id)
    try:
        yield reader
    finally:
        reader.close()


def new_key(database_url: str, scope: str = "write") -> str:
    """A key of a new account, issued straight into the database."""
    db = Database(database_url, pool_size=1)
    try:
        return create_key(db, f"acct-{uuid.uuid4().hex[:12]}", scope).plaintext
    finally:
        db.dispose()


@contextlib.contextmanager
def serving(
    database_url: str, log_dir: Path, redis_url: str | None = None, **settings: str
) -> Iterator[ServerProcess]:
    """One `callstats serve` subprocess on the database, stopped on the way out."""
    server = start_server(server_env(database_url, redis_url, **settings), log_dir)
    try:
        yield server
    finally:
        server.stop()


def post_events(http: httpx.Client, base_url: str, *events: dict[str, Any]) -> float:
    """recordCallEvents (every event must be applied); the monotonic time its answer arrived."""
    response = http.post(f"{base_url}/recordCallEvents", json={"events": list(events)})
    acknowledged = time.monotonic()
    assert response.status_code == 200, response.text
    assert response.json()["data"]["applied"] == len(events), response.text
    return acknowledged
