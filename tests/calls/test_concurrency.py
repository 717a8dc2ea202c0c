"""Many clients posting events to one campaign at once; the final numbers equal the recomputation.

The in-process transport serves the clients below at once: their requests are
written in concurrent transactions, or grouped into one (calls/group.py). Overlapping
clients deliver the same events (retried webhooks): each copy is in order, so
whichever copy a transaction sees first, every event is applied exactly once and
the final numbers do not depend on the interleaving.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, insert, select, text

from callstats.app import CallstatsApp
from callstats.calls import service
from callstats.calls.schemas import EventRules
from callstats.calls.service import WriteRequest, Written
from callstats.db.engine import Database
from callstats.db.schema import COUNTER_COLUMNS, campaign_counters, campaigns, contacts
from callstats.stats.reconcile import recompute
from callstats.stats.response import stats_response
from tests.agreement import assert_stats
from tests.apps import http_client
from tests.conftest import new_campaign
from tests.factories import setup_campaign
from tests.oracle import (
    BASE_MS,
    RETRYABLE,
    Event,
    Rules,
    SeededChoices,
    batches,
    interleave,
    phone_of,
    simulate_contact,
)

CLIENTS = 16
CONTACTS = 64


def client_plans(choices: SeededChoices, streams: list[list[Event]], largest: int) -> list[list[list[Event]]]:
    """Each client's requests: a contact's events go to one client, or (overlap) in full to two or three."""
    per_client: list[list[list[Event]]] = [[] for _ in range(CLIENTS)]
    for index, stream in enumerate(streams):
        copies = 1 if index % 2 == 0 else choices.integer(2, 3)
        for owner in random.Random(index).sample(range(CLIENTS), copies):
            per_client[owner].append(stream)
    return [batches(choices, interleave(choices, mine), largest) for mine in per_client]


class OverlapProbe:
    """Wraps the app's write transactions to record how many ran at the same time."""

    def __init__(self, app: CallstatsApp, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.running = self.peak = 0
        original = app.db.write

        def write(work: Callable[[Any], Any]) -> Any:
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                return original(work)
            finally:
                with self.lock:
                    self.running -= 1

        monkeypatch.setattr(app.db, "write", write)


class GroupingProbe:
    """Wraps the write of requests to record how many were being written at once (overlapping or grouped)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.running = self.peak = self.largest_group = 0
        original = service.record_group

        def record_group(db: Database, requests: list[WriteRequest], rules: EventRules) -> list[Written]:
            with self.lock:
                self.running += len(requests)
                self.peak = max(self.peak, self.running)
                self.largest_group = max(self.largest_group, len(requests))
            try:
                return original(db, requests, rules)
            finally:
                with self.lock:
                    self.running -= len(requests)

        monkeypatch.setattr(service, "record_group", record_group)


async def run_clients(
    app: CallstatsApp, auth: dict[str, str], campaign_id: str, prefix: str, plans: list[list[list[Event]]]
) -> list[dict[str, Any]]:
    """All clients at once, each sending its requests in order; every event's result."""

    async def one_client(requests: list[list[Event]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        async with http_client(app) as http:
            for request in requests:
                body = {"events": [e.body(campaign_id, prefix) for e in request]}
                response = await http.post("/recordCallEvents", json=body, headers=auth)
                assert response.status_code == 200, response.text
                results += response.json()["data"]["results"]
        return results

    per_client = await asyncio.gather(*(one_client(plan) for plan in plans))
    return [result for results in per_client for result in results]


def assert_each_event_applied_once(results: list[dict[str, Any]], expected_ids: set[str]) -> None:
    """Every distinct event applied exactly once; its other deliveries are duplicates; nothing refused."""
    statuses: dict[str, list[str]] = defaultdict(list)
    for result in results:
        statuses[result["event_id"]].append(result["status"])
    assert set(statuses) == expected_ids
    wrong = {eid: s for eid, s in statuses.items() if sorted(s) != ["applied"] + ["duplicate"] * (len(s) - 1)}
    assert wrong == {}


@pytest.mark.parametrize(("seed", "largest"), [(1, 25), (2, 1)], ids=["batches", "one-event-per-request"])
async def test_concurrent_clients_match_recomputation(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    app: CallstatsApp,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    largest: int,
) -> None:
    """16 clients, disjoint and overlapping contacts, at once: final stats == reconcile == oracle."""
    choices = SeededChoices(seed)
    rules = Rules(3, frozenset(RETRYABLE))
    campaign_id, phones, oracle = await setup_campaign(client, auth, rules, CONTACTS)
    streams = [
        simulate_contact(choices, f"k{i}", phone, rules, BASE_MS + choices.integer(0, 10**6))
        for i, phone in enumerate(phones)
    ]
    prefix = f"{uuid.uuid4().hex[:12]}:"
    probe = GroupingProbe(monkeypatch)
    results = await run_clients(app, auth, campaign_id, prefix, client_plans(choices, streams, largest))
    for stream in streams:  # the canonical order: each contact's events once, in order
        for event in stream:
            assert oracle.deliver(event) == ("applied", None)
    assert_each_event_applied_once(results, {f"{prefix}{e.event_id}" for s in streams for e in s})
    assert probe.peak > 1  # requests were really written together (overlapping or grouped)
    data = await assert_stats(client, auth, app, campaign_id, oracle)
    assert data["total_contacts"] == CONTACTS
    assert data["calls_pending"] < CONTACTS  # the run did move contacts


async def test_racing_second_calls_for_one_contact(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 clients start 16 different calls for the same contact at once: exactly one wins, 15 get CONFLICT."""
    campaign_id, phones, oracle = await setup_campaign(client, auth, Rules(3, frozenset(RETRYABLE)), 1)
    prefix = f"{uuid.uuid4().hex[:12]}:"
    plans = [[[Event(f"s{n}", phones[0], f"c{n}", "call.started", BASE_MS + n)]] for n in range(CLIENTS)]
    probe = GroupingProbe(monkeypatch)
    results = await run_clients(app, auth, campaign_id, prefix, plans)
    assert sorted(r["status"] for r in results) == ["applied"] + ["rejected"] * (CLIENTS - 1)
    assert {r["error"] for r in results if r["status"] == "rejected"} == {"CONFLICT"}
    winner = next(plan[0][0] for plan, r in zip(plans, results, strict=True) if r["status"] == "applied")
    assert oracle.deliver(winner) == ("applied", None)
    assert probe.peak > 1  # requests were really written together (overlapping or grouped)
    data = await assert_stats(client, auth, app, campaign_id, oracle)
    assert (data["calls_in_progress"], data["calls_pending"]) == (1, 0)


async def test_racing_reuse_of_one_event_id(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 clients send one event_id with 16 different bodies (different contacts) at once: one applies."""
    campaign_id, phones, oracle = await setup_campaign(client, auth, Rules(3, frozenset(RETRYABLE)), CLIENTS)
    prefix = f"{uuid.uuid4().hex[:12]}:"
    plans = [[[Event("same", phones[n], f"c{n}", "call.started", BASE_MS + n)]] for n in range(CLIENTS)]
    probe = GroupingProbe(monkeypatch)
    results = await run_clients(app, auth, campaign_id, prefix, plans)
    assert sorted(r["status"] for r in results) == ["applied"] + ["rejected"] * (CLIENTS - 1)
    assert {r["error"] for r in results if r["status"] == "rejected"} == {"CONFLICT"}
    winner = next(plan[0][0] for plan, r in zip(plans, results, strict=True) if r["status"] == "applied")
    assert oracle.deliver(winner) == ("applied", None)
    assert probe.peak > 1  # requests were really written together (overlapping or grouped)
    data = await assert_stats(client, auth, app, campaign_id, oracle)
    assert (data["calls_in_progress"], data["calls_pending"]) == (1, CLIENTS - 1)


async def test_concurrent_add_contacts_count_each_phone_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    app: CallstatsApp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 clients add overlapping phone lists at once: each phone is accepted exactly once."""
    campaign_id, _, oracle = await setup_campaign(client, auth, Rules(3, frozenset(RETRYABLE)), 0)
    rng = random.Random(3)
    plans = [[rng.sample(range(200), 40) for _ in range(3)] for _ in range(CLIENTS)]

    async def one_client(requests: list[list[int]]) -> int:
        accepted = 0
        async with http_client(app) as http:
            for numbers in requests:
                body = {"contacts": [{"phone": phone_of(n)} for n in numbers]}
                response = await http.post(f"/addContacts/{campaign_id}", json=body, headers=auth)
                assert response.status_code == 200, response.text
                counts = response.json()["data"]
                assert counts["accepted"] + counts["duplicate"] == len(numbers)
                accepted += counts["accepted"]
        return accepted

    probe = OverlapProbe(app, monkeypatch)
    accepted = await asyncio.gather(*(one_client(plan) for plan in plans))
    assert probe.peak > 1  # transactions really overlapped
    distinct = {phone_of(n) for plan in plans for numbers in plan for n in numbers}
    assert sum(accepted) == len(distinct)
    oracle.add_contacts(sorted(distinct))
    data = await assert_stats(client, auth, app, campaign_id, oracle)
    assert data["total_contacts"] == data["calls_pending"] == len(distinct)


BLOCKERS = 12  # more concurrent imports than the service's write attempts


async def test_add_contacts_outlasts_concurrent_imports(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """An import overlapping 12 in-flight imports (committing one after another) still answers 200."""
    if app.db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: imports never overlap")
    campaign_id = await new_campaign(client, auth)
    phones = [phone_of(n) for n in range(BLOCKERS)]
    with app.db.read() as conn:
        account_id = conn.execute(
            select(campaigns.c.account_id).where(campaigns.c.id == campaign_id)
        ).scalar_one()
    blockers = [
        in_flight_import(app, campaign_id, account_id, phone, slot=100 + n) for n, phone in enumerate(phones)
    ]
    body = {"contacts": [{"phone": p} for p in phones]}
    request = asyncio.create_task(client.post(f"/addContacts/{campaign_id}", json=body, headers=auth))
    try:
        for blocker in blockers:  # each commits once the import waits on it, as a concurrent import would
            await waiting_on_a_lock(app, request)
            blocker.commit()
    finally:
        for blocker in blockers:
            blocker.close()
    response = await request
    assert response.status_code == 200, response.text
    assert (response.json()["data"]["accepted"], response.json()["data"]["duplicate"]) == (0, BLOCKERS)
    data = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    with app.db.read() as conn:
        recomputed = recompute(conn, campaign_id)
    assert recomputed is not None and data == stats_response(recomputed)
    assert data["total_contacts"] == BLOCKERS


def in_flight_import(
    app: CallstatsApp, campaign_id: str, account_id: str, phone: str, slot: int
) -> Connection:
    """An uncommitted import of one phone (its contact row and its own counter slot)."""
    conn = app.db.engine.connect()
    conn.begin()
    conn.execute(
        insert(contacts).values(
            campaign_id=campaign_id,
            account_id=account_id,
            phone=phone,
            state="pending",
            attempts=0,
            created_at=0,
        )
    )
    conn.execute(
        insert(campaign_counters).values(
            campaign_id=campaign_id,
            slot=slot,
            account_id=account_id,
            **{**dict.fromkeys(COUNTER_COLUMNS, 0), "total": 1, "pending": 1},
        )
    )
    return conn


async def waiting_on_a_lock(app: CallstatsApp, request: asyncio.Task[Any], patience: float = 3.0) -> None:
    """Until some session of this database waits on a lock (or the request is done, or `patience` passes)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(int(patience / 0.02)):
        if request.done():
            return
        with app.db.read() as conn:
            if conn.execute(query).scalar_one():
                return
        await asyncio.sleep(0.02)
