"""Dialers for the reliability tests: concurrent clients that post call events and keep what was acknowledged.

Each client sends its requests in order and, like a real dialer, sends a request
again until it is acknowledged (2xx): a refused connection, a reset, a timeout or a
503 means "not stored, try later". Events are idempotent by event_id, so a request
stored just before a crash is a duplicate when sent again, never counted twice.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from callstats.db.engine import Database
from callstats.db.schema import call_events
from callstats.stats.reconcile import differences
from tests.oracle import (
    BASE_MS,
    RETRYABLE,
    CampaignOracle,
    Event,
    Rules,
    batches,
    interleave,
    simulate_contact,
)


class SeededChoices:
    """Simulation choices from a seeded Random (reproducible)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return self.rng.randint(low, high)


RULES = Rules(3, frozenset(RETRYABLE))


@dataclass
class Tally:
    """What the clients saw: acknowledged events, and the answers that were not acknowledgements."""

    acknowledged: set[str] = field(default_factory=set)
    requests_acknowledged: int = 0
    not_acknowledged: Counter[str] = field(default_factory=Counter)  # "503", "ConnectError", ...
    unexpected: list[str] = field(default_factory=list)  # answers no outage explains (4xx, 500)
    lock: threading.Lock = field(default_factory=threading.Lock)


def plans(seed: int, phones: list[str], clients: int, largest: int) -> tuple[list[list[list[Event]]], int]:
    """Each client's requests (a contact's events all go to one client, in order) and the event count."""
    choices = SeededChoices(seed)
    streams = [
        simulate_contact(choices, f"k{i}", phone, RULES, BASE_MS + choices.integer(0, 10**6))
        for i, phone in enumerate(phones)
    ]
    mine: list[list[list[Event]]] = [[] for _ in range(clients)]
    for index, stream in enumerate(streams):
        mine[index % clients].append(stream)
    requests = [batches(choices, interleave(choices, streams_of), largest) for streams_of in mine]
    return requests, sum(len(s) for s in streams)


def replay(phones: list[str], seed: int) -> CampaignOracle:
    """The oracle after every event of `plans(seed, ...)` delivered once, in each contact's order."""
    choices = SeededChoices(seed)
    oracle = CampaignOracle(RULES.max_attempts, RULES.retry_on)
    oracle.add_contacts(phones)
    for i, phone in enumerate(phones):
        for event in simulate_contact(choices, f"k{i}", phone, RULES, BASE_MS + choices.integer(0, 10**6)):
            oracle.deliver(event)
    return oracle


class Dialers:
    """`plans` posted by one thread per client against `base_url`, until every request is acknowledged."""

    def __init__(self, base_url: str, key: str, campaign_id: str, requests: list[list[list[Event]]]) -> None:
        self.base_url = base_url
        self.headers = {"x-api-key": key}
        self.campaign_id = campaign_id
        self.requests = requests
        self.prefix = f"{uuid.uuid4().hex[:8]}:"
        self.tally = Tally()
        self.threads = [threading.Thread(target=self._client, args=(r,), daemon=True) for r in requests]
        self.give_up_at = 0.0

    def start(self, within_seconds: float) -> None:
        """Start every client; each gives up (leaving requests unsent) after `within_seconds`."""
        self.give_up_at = time.monotonic() + within_seconds
        for thread in self.threads:
            thread.start()

    def join(self) -> bool:
        """Wait for the clients; whether all of them finished."""
        for thread in self.threads:
            thread.join(max(self.give_up_at - time.monotonic(), 0) + 15)
        return not any(t.is_alive() for t in self.threads)

    def _client(self, requests: list[list[Event]]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            for request in requests:
                body = {"events": [e.body(self.campaign_id, self.prefix) for e in request]}
                while time.monotonic() < self.give_up_at and not self._send(http, body):
                    time.sleep(0.1)  # a dialer's back-off: the server may be down or answering 503

    def _send(self, http: httpx.Client, body: dict[str, Any]) -> bool:
        """Post once; True when acknowledged."""
        try:
            response = http.post("/recordCallEvents", json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            self._missed(type(exc).__name__)
            return False
        if response.status_code == 200:
            results = response.json()["data"]["results"]
            with self.tally.lock:
                self.tally.requests_acknowledged += 1
                self.tally.acknowledged.update(r["event_id"] for r in results if r["status"] != "rejected")
                self.tally.unexpected += [str(r) for r in results if r["status"] == "rejected"]
            return True
        self._missed(str(response.status_code))
        if response.status_code != 503 or "retry-after" not in response.headers:
            with self.tally.lock:
                self.tally.unexpected.append(f"{response.status_code} {response.text[:200]}")
        return False

    def _missed(self, why: str) -> None:
        with self.tally.lock:
            self.tally.not_acknowledged[why] += 1


def stored_event_ids(db: Database, campaign_id: str) -> set[str]:
    """The event ids the database holds for a campaign."""
    with db.read() as conn:
        rows = conn.execute(select(call_events.c.event_id).where(call_events.c.campaign_id == campaign_id))
        return {row[0] for row in rows}


def counter_differences(db: Database, campaign_id: str) -> list[Any] | None:
    """Where the stored counters differ from reconcile's recomputation from the raw rows."""
    with db.read() as conn:
        return differences(conn, campaign_id)
