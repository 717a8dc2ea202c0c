"""Group commit: requests written together answer as if each had run alone, and fail alone."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from callstats.app import CallstatsApp
from callstats.calls import group as group_module
from callstats.calls import service
from callstats.calls.endpoint import PATH
from callstats.calls.group import GroupCommit
from callstats.calls.schemas import EventRules
from callstats.calls.service import WriteRequest, Written
from callstats.core import lifecycle
from callstats.db.engine import Database
from tests.agreement import assert_stats
from tests.apps import http_client
from tests.envelope import assert_error
from tests.factories import setup_campaign
from tests.oracle import BASE_MS, RETRYABLE, Event, Rules, SeededChoices, phone_of, simulate_contact
from tests.refusals import refusing


class HeldWriter:
    """One writer whose next group is held until every request sent meanwhile waits behind it."""

    def __init__(self, app: CallstatsApp, monkeypatch: pytest.MonkeyPatch) -> None:
        groups = app.hot[PATH].groups  # type: ignore[attr-defined]
        assert isinstance(groups, GroupCommit)
        self.groups = groups
        monkeypatch.setattr(groups, "writers", 1)
        self.release = threading.Event()
        self.held = 0
        self.sizes: list[int] = []  # requests per group
        self.events: list[int] = []  # events per group
        original = service.record_group

        def record_group(db: Database, requests: list[WriteRequest], rules: EventRules) -> list[Written]:
            self.sizes.append(len(requests))
            self.events.append(sum(len(request.items) for request in requests))
            if not self.release.is_set():
                self.held = len(requests)
                self.release.wait(30)
            return original(db, requests, rules)

        monkeypatch.setattr(service, "record_group", record_group)

    async def send(
        self, app: CallstatsApp, requests: list[tuple[dict[str, str], dict[str, Any]]]
    ) -> list[Any]:
        """Send the requests at once; the first group is held until all the others wait: one group."""
        self.release.clear()
        self.held = 0

        async def post(headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
            async with http_client(app) as http:
                return await http.post(PATH, json=body, headers=headers)

        tasks = [asyncio.create_task(post(headers, body)) for headers, body in requests]
        for _ in range(3000):
            if self.held + len(self.groups.waiting) == len(requests):
                break
            await asyncio.sleep(0.01)
        self.release.set()
        return await asyncio.gather(*tasks)


async def test_grouped_single_event_requests_match_the_oracle(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One event per request, many requests per group: stats == reconcile == oracle."""
    choices = SeededChoices(7)
    rules = Rules(3, frozenset(RETRYABLE))
    campaign_id, phones, oracle = await setup_campaign(client, auth, rules, 12)
    streams = [
        simulate_contact(choices, f"k{i}", phone, rules, BASE_MS + choices.integer(0, 10**6))
        for i, phone in enumerate(phones)
    ]
    prefix = f"{uuid.uuid4().hex[:12]}:"
    writer = HeldWriter(app, monkeypatch)
    for step in range(max(len(s) for s in streams)):
        round_ = [s[step] for s in streams if step < len(s)]
        requests = [(auth, {"events": [e.body(campaign_id, prefix)]}) for e in round_]
        requests += requests[:2]  # redeliveries in the same group are duplicates
        responses = await writer.send(app, requests)
        results = [r.json()["data"]["results"][0] for r in responses]
        expected = [oracle.deliver(e) for e in round_] + [("duplicate", None)] * len(requests[len(round_) :])
        assert [(r["status"], r["error"]) for r in results] == expected
    assert max(writer.sizes) > 1
    data = await assert_stats(client, auth, app, campaign_id, oracle)
    assert data["calls_pending"] < len(phones)


async def test_a_failing_request_does_not_affect_its_group(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    app: CallstatsApp,
    monkeypatch: pytest.MonkeyPatch,
    make_key: Callable[..., str],
) -> None:
    """An unexpected error fails its own request only; key errors and other accounts stay their own."""
    rules = Rules(3, frozenset(RETRYABLE))
    campaign_id, phones, oracle = await setup_campaign(client, auth, rules, 6)
    prefix = f"{uuid.uuid4().hex[:12]}:"
    events = [Event(f"s{n}", phone, f"c{n}", "call.started", BASE_MS + n) for n, phone in enumerate(phones)]
    original = lifecycle.apply

    def apply(*args: Any) -> Any:
        if args[2].call_id == f"{prefix}boom":
            raise RuntimeError("boom")
        return original(*args)

    monkeypatch.setattr(lifecycle, "apply", apply)
    boom = {**events[0].body(campaign_id, prefix), "event_id": f"{prefix}boom", "call_id": f"{prefix}boom"}
    writer = HeldWriter(app, monkeypatch)
    stranger = {"x-api-key": make_key("other")}
    requests = [(auth, {"events": [e.body(campaign_id, prefix)]}) for e in events[:3]]
    requests += [
        (auth, {"events": [boom]}),
        ({"x-api-key": make_key("acme", "read")}, {"events": [events[3].body(campaign_id, prefix)]}),
        (stranger, {"events": [events[4].body(campaign_id, prefix)]}),  # another account's campaign
        (auth, {"events": []}),
        (auth, {"events": [events[5].body(campaign_id, prefix)]}),
    ]
    responses = await writer.send(app, requests)
    assert [r.status_code for r in responses] == [200, 200, 200, 500, 403, 200, 400, 200]
    assert_error(responses[3], 500, "INTERNAL_SERVER_ERROR")
    assert_error(responses[4], 403, "FORBIDDEN")
    assert_error(responses[6], 400, "VALIDATION_ERROR")
    assert responses[5].json()["data"]["results"][0]["error"] == "NOT_FOUND"
    for n in (0, 1, 2, 7):
        assert responses[n].json()["data"]["applied"] == 1
    assert max(writer.sizes) > 1
    for event in events[:3] + events[5:]:
        assert oracle.deliver(event) == ("applied", None)
    await assert_stats(client, auth, app, campaign_id, oracle)


async def test_a_group_holds_at_most_max_events(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting requests are taken in order while their events fit the group's budget; the rest wait."""
    monkeypatch.setattr(group_module, "MAX_EVENTS", 3)
    rules = Rules(3, frozenset(RETRYABLE))
    campaign_id, phones, oracle = await setup_campaign(client, auth, rules, 7)
    prefix = f"{uuid.uuid4().hex[:12]}:"
    events = [Event(f"s{n}", phone, f"c{n}", "call.started", BASE_MS + n) for n, phone in enumerate(phones)]
    bodies = [e.body(campaign_id, prefix) for e in events]
    writer = HeldWriter(app, monkeypatch)
    shapes = [bodies[0:1], bodies[1:3], bodies[3:4], bodies[4:6], bodies[6:7]]  # 1, 2, 1, 2, 1 events
    responses = await writer.send(app, [(auth, {"events": shape}) for shape in shapes])
    assert [r.json()["data"]["applied"] for r in responses] == [1, 2, 1, 2, 1]
    assert sum(writer.events) == 7 and max(writer.events) <= 3  # never over the budget
    assert max(writer.sizes) > 1 and len(writer.sizes) >= 3  # grouped, and split where it must be
    for event in events:
        assert oracle.deliver(event) == ("applied", None)
    await assert_stats(client, auth, app, campaign_id, oracle)


POISON = "poison"  # the event_id the test's trigger makes the database refuse


def isolation_events() -> list[Event]:
    """Good events around one the database refuses, a duplicate and an end after it (in order)."""
    return [
        Event("s0", phone_of(0), "c0", "call.started", BASE_MS),
        Event("s1", phone_of(1), "c1", "call.started", BASE_MS + 1),
        Event(POISON, phone_of(2), "c2", "call.started", BASE_MS + 2),
        Event("s0", phone_of(0), "c0", "call.started", BASE_MS),  # a redelivery: duplicate
        Event("e0", phone_of(0), "c0", "call.ended", BASE_MS + 3, "answered", 30),
    ]


@pytest.mark.parametrize("pause", [False, True], ids=["alone", "in-a-group"])
async def test_a_database_error_rejects_only_its_event(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    app: CallstatsApp,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    pause: bool,
) -> None:
    """Issue 8 item 9: an event the database refuses (a real error, from a trigger) is rejected, its
    neighbours in the request and in the commit group are applied or duplicates as usual, in order."""
    rules = Rules(3, frozenset(RETRYABLE))
    campaign_id, phones, oracle = await setup_campaign(client, auth, rules, 4)
    events = isolation_events()
    bodies = [{**e.body(campaign_id, ""), "event_id": e.event_id} for e in events]
    other = Event("s3", phones[3], "c3", "call.started", BASE_MS + 4)
    with refusing(database_url, "call_events", "event_id", POISON):
        if pause:  # the request shares a group with another: both run alone, then event by event
            writer = HeldWriter(app, monkeypatch)
            requests = [(auth, {"events": bodies}), (auth, {"events": [other.body(campaign_id, "")]})]
            response, neighbour = await writer.send(app, requests)
            assert max(writer.sizes) == 2
            assert neighbour.status_code == 200 and neighbour.json()["data"]["applied"] == 1
        else:
            response = await client.post("/recordCallEvents", json={"events": bodies}, headers=auth)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [r["status"] for r in data["results"]] == [
        "applied",
        "applied",
        "rejected",
        "duplicate",
        "applied",
    ]
    assert [r["index"] for r in data["results"]] == [0, 1, 2, 3, 4]
    assert (data["received"], data["applied"], data["duplicate"], data["rejected"]) == (5, 3, 1, 1)
    refused = data["results"][2]
    assert refused["event_id"] == POISON and refused["error"] == "INTERNAL_SERVER_ERROR"
    assert "could not be stored" in refused["reason"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"].count("event_not_stored") == 1
    for event in [*events[:2], events[3], events[4]] + ([other] if pause else []):
        oracle.deliver(event)
    await assert_stats(client, auth, app, campaign_id, oracle)
    again = await client.post("/recordCallEvents", json={"events": bodies}, headers=auth)
    statuses = [r["status"] for r in again.json()["data"]["results"]]
    assert statuses == ["duplicate", "duplicate", "applied", "duplicate", "duplicate"]  # trigger gone


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"event_id": "nul\x00id"}, id="nul-in-event_id"),
        pytest.param({"call_id": "nul\x00call"}, id="nul-in-call_id"),
        pytest.param({"contact_id": 2**63, "phone": None}, id="contact_id-2**63"),
    ],
)
async def test_values_a_backend_cannot_store_reject_only_their_event(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, bad: dict[str, Any]
) -> None:
    """Issue 8 item 9's examples: a NUL in an id, a contact_id over 64 bits. Refused at the edge (or,
    should one get through, by the database): that event is rejected, never its neighbours."""
    rules = Rules(3, frozenset(RETRYABLE))
    campaign_id, phones, oracle = await setup_campaign(client, auth, rules, 3)
    events = [Event(f"s{n}", phone, f"c{n}", "call.started", BASE_MS + n) for n, phone in enumerate(phones)]
    bodies = [e.body(campaign_id, "") for e in events]
    bodies[1] = {k: v for k, v in {**bodies[1], **bad}.items() if v is not None}
    response = await client.post("/recordCallEvents", json={"events": bodies}, headers=auth)
    assert response.status_code == 200, response.text
    results = response.json()["data"]["results"]
    assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
    assert results[1]["error"] in ("VALIDATION_ERROR", "INTERNAL_SERVER_ERROR")
    for event in (events[0], events[2]):
        oracle.deliver(event)
    await assert_stats(client, auth, app, campaign_id, oracle)
