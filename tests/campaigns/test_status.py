"""Campaign status and last_event_at: the pure rule, a campaign's life on a clock the test moves, the
stall_after_minutes setting, and getCampaigns' status filter with its keyset pagination."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from callstats.accounts.service import create_key
from callstats.app import create_app
from callstats.campaigns import service
from callstats.clock import now_ms
from callstats.config import Settings
from callstats.core.status import Progress, campaign_status
from callstats.stats.response import iso_utc
from tests.factories import ended_call, started_call
from tests.seed import SEED_FIELDS

MINUTE = 60_000


class MovedClock:
    """The server's clock, moved by the test (create_app's `clock`)."""

    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        """Move the clock `ms` milliseconds on."""
        self.now += ms


@dataclass
class Timed:
    """An app on a test clock, a client, and acme's write-key headers."""

    clock: MovedClock
    http: httpx.AsyncClient
    auth: dict[str, str]

    async def campaign(self, phones: list[str], **body: Any) -> str:
        """A new campaign holding `phones`; its id."""
        created = await self.http.post("/createCampaign", json={"name": "status", **body}, headers=self.auth)
        assert created.status_code == 201, created.text
        campaign_id: str = created.json()["data"]["campaign_id"]
        if phones:
            await self.add(campaign_id, phones)
        return campaign_id

    async def add(self, campaign_id: str, phones: list[str]) -> None:
        """addContacts, every phone accepted."""
        body = {"contacts": [{"phone": p} for p in phones]}
        added = await self.http.post(f"/addContacts/{campaign_id}", json=body, headers=self.auth)
        assert added.status_code == 200 and added.json()["data"]["accepted"] == len(phones), added.text

    async def events(self, *events: dict[str, Any]) -> list[str]:
        """recordCallEvents; each event's status."""
        response = await self.http.post("/recordCallEvents", json={"events": list(events)}, headers=self.auth)
        assert response.status_code == 200, response.text
        return [r["status"] for r in response.json()["data"]["results"]]

    async def shown(self, campaign_id: str) -> dict[str, Any]:
        """getCampaign's data."""
        response = await self.http.get(f"/getCampaign/{campaign_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


@pytest.fixture
async def timed(settings: Settings) -> AsyncIterator[Timed]:
    """The app on a clock that starts now and moves only when the test moves it."""
    clock = MovedClock(now_ms())
    app = create_app(settings, clock=clock)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://callstats.test"
        ) as http:
            yield Timed(clock, http, {"x-api-key": create_key(app.db, "acme", "write").plaintext})
    finally:
        await app.aclose()


def test_status_rule_at_its_boundaries() -> None:
    """not_started without a call start (0 contacts too), completed once completed_at is set, stalled
    from exactly stall_after_minutes after the last event, running before."""
    t = 1_700_000_000_000
    assert campaign_status(Progress(0, 0, 0, None, None, None), t + 10**9, 1) == "not_started"
    assert campaign_status(Progress(3, 3, 0, None, None, None), t + 10**9, 1) == "not_started"
    running = Progress(3, 2, 1, t, None, t + 5)
    assert campaign_status(running, t + 5 + 30 * MINUTE - 1, 30) == "running"
    assert campaign_status(running, t + 5 + 30 * MINUTE, 30) == "stalled"
    assert campaign_status(running, t + 5 + 2 * MINUTE, 2) == "stalled"
    done = Progress(3, 0, 0, t, t + 9, t + 9)
    assert campaign_status(done, t + 10**9, 1) == "completed"
    assert campaign_status(Progress(3, 0, 1, t, t + 9, t + 9), t + 10**9, 1) == "stalled"
    assert campaign_status(Progress(3, 1, 0, t, None, None), t + MINUTE, 1) == "stalled"  # from its start


async def test_a_campaign_s_life_on_the_server_clock(timed: Timed) -> None:
    """not_started -> running -> stalled after stall_after_minutes -> running on a new event ->
    completed; duplicates, rejections and events that change nothing leave last_event_at alone;
    contacts added to a completed campaign make it stalled at once when its last event is old."""
    one, two = "+14155550101", "+14155550102"
    campaign_id = await timed.campaign([one, two], stall_after_minutes=5, max_attempts=1)
    shown = await timed.shown(campaign_id)
    assert (shown["status"], shown["last_event_at"], shown["stall_after_minutes"]) == ("not_started", None, 5)
    tag = uuid.uuid4().hex[:8]
    first = timed.clock.now
    assert await timed.events(started_call(campaign_id, one, f"{tag}-1")) == ["applied"]
    shown = await timed.shown(campaign_id)
    assert (shown["status"], shown["last_event_at"]) == ("running", iso_utc(first))

    timed.clock.advance(5 * MINUTE - 1)
    assert (await timed.shown(campaign_id))["status"] == "running"
    again = started_call(campaign_id, one, f"{tag}-1")
    conflicting = ended_call(campaign_id, "+14155550199", f"{tag}-x", "busy")  # no such contact: rejected
    assert await timed.events(again, conflicting) == ["duplicate", "rejected"]
    timed.clock.advance(1)
    shown = await timed.shown(campaign_id)
    assert (shown["status"], shown["last_event_at"]) == ("stalled", iso_utc(first))

    ended = timed.clock.now
    assert await timed.events(ended_call(campaign_id, one, f"{tag}-1", "answered", 40)) == ["applied"]
    shown = await timed.shown(campaign_id)
    assert (shown["status"], shown["last_event_at"]) == ("running", iso_utc(ended))
    timed.clock.advance(MINUTE)
    late = ended_call(campaign_id, one, f"{tag}-1", "answered", 40, event_id=f"{tag}-1-late")
    assert await timed.events(late) == ["applied"]  # "call already ended": stored, changes nothing
    assert (await timed.shown(campaign_id))["last_event_at"] == iso_utc(ended)

    finished = timed.clock.now
    assert await timed.events(ended_call(campaign_id, two, f"{tag}-2", "busy")) == ["applied"]
    timed.clock.advance(10**6 * MINUTE)
    shown = await timed.shown(campaign_id)
    assert (shown["status"], shown["last_event_at"]) == ("completed", iso_utc(finished))
    stats = await timed.http.get(f"/getCampaignStats/{campaign_id}", headers=timed.auth)
    assert list(stats.json()["data"]) == SEED_FIELDS  # the seed's response is unchanged

    await timed.add(campaign_id, ["+14155550103"])
    assert (await timed.shown(campaign_id))["status"] == "stalled"


async def test_a_campaign_without_contacts_is_not_started(timed: Timed) -> None:
    """No contact, no call: not_started whatever the time."""
    campaign_id = await timed.campaign([])
    timed.clock.advance(10**6 * MINUTE)
    shown = await timed.shown(campaign_id)
    assert (shown["status"], shown["last_event_at"], shown["stall_after_minutes"]) == (
        "not_started",
        None,
        30,
    )


@pytest.mark.parametrize("value", [0, 43_201, -1, "30", 1.5, True, None])
async def test_stall_after_minutes_is_validated(timed: Timed, value: Any) -> None:
    """A whole number of minutes from 1 to 43,200 (30 days); anything else is a 400 and no campaign."""
    body = {"name": "bad", "stall_after_minutes": value}
    response = await timed.http.post("/createCampaign", json=body, headers=timed.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert "stall_after_minutes" in response.json()["message"]
    listed = await timed.http.get("/getCampaigns", headers=timed.auth)
    assert listed.json()["data"] == []


async def statuses_made(timed: Timed) -> dict[str, str]:
    """Eleven campaigns in every status (oldest first): campaign id -> the status it must show."""
    made: dict[str, str] = {}
    tag = uuid.uuid4().hex[:8]
    plan = ["not_started", "stalled", "completed", "running"] * 2 + ["running", "stalled", "completed"]
    for n, wanted in enumerate(plan):
        phone = f"+1415555{n + 200:04d}"
        stall = 1 if wanted == "stalled" else 30
        campaign_id = await timed.campaign([phone], max_attempts=1, stall_after_minutes=stall)
        if wanted != "not_started":
            await timed.events(started_call(campaign_id, phone, f"{tag}-{n}"))
        if wanted == "completed":
            await timed.events(ended_call(campaign_id, phone, f"{tag}-{n}", "failed"))
        timed.clock.advance(1)  # distinct created_at for most, equal ones are ordered by id
        made[campaign_id] = wanted
    timed.clock.advance(MINUTE)  # the "stalled" ones (1 minute) stall; the others (30) do not
    return made


async def pages(timed: Timed, limit: int, status: str | None) -> list[list[dict[str, Any]]]:
    """Every page of getCampaigns for `status`, following next_cursor."""
    found: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while len(found) < 50:
        params: dict[str, str | int] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        response = await timed.http.get("/getCampaigns", params=params, headers=timed.auth)
        assert response.status_code == 200, response.text
        found.append(response.json()["data"])
        cursor = response.json()["pagination"]["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("pagination does not end")


@pytest.mark.parametrize("scan_batch", [3, service.SCAN_BATCH])
async def test_status_filter_pages_hold_each_match_once(
    timed: Timed, monkeypatch: pytest.MonkeyPatch, scan_batch: int
) -> None:
    """Each status's pages list exactly its campaigns, newest first, each once, at every page size
    (and with the scan reading 3 campaigns at a time, so a page spans several reads); the unfiltered
    pages show every campaign with its status."""
    monkeypatch.setattr(service, "SCAN_BATCH", scan_batch)
    made = await statuses_made(timed)
    newest_first = list(reversed(made))
    everything = [c for page in await pages(timed, 4, None) for c in page]
    assert [c["campaign_id"] for c in everything] == newest_first
    assert {c["campaign_id"]: c["status"] for c in everything} == made
    for status in ("not_started", "running", "stalled", "completed"):
        expected = [c for c in newest_first if made[c] == status]
        for limit in (1, 2, len(expected), 200):
            walked = await pages(timed, limit, status)
            assert all(len(page) <= limit for page in walked)
            assert all(len(page) == limit for page in walked[:-1])  # only the last page is short
            listed = [c["campaign_id"] for page in walked for c in page]
            assert listed == expected, (status, limit)
            assert all(c["status"] == status for page in walked for c in page)


@pytest.mark.parametrize("status", ["done", "RUNNING", "", "running,stalled"])
async def test_unknown_status_filter_is_a_validation_error(timed: Timed, status: str) -> None:
    """A status that is not one of the four is a 400 naming the field and the accepted values."""
    response = await timed.http.get("/getCampaigns", params={"status": status}, headers=timed.auth)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "VALIDATION_ERROR"
    assert body["message"].startswith("status:") and "not_started" in body["message"]
