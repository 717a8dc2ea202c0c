"""createCampaign, getCampaign and getCampaigns: defaults, validation, pagination, tenancy."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import new_campaign

DEFAULT_RETRY_ON = {"busy", "no_answer", "voicemail", "failed"}


async def create(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    """createCampaign's 201 answer."""
    response = await client.post("/createCampaign", json=body, headers=auth)
    assert response.status_code == 201, response.text
    envelope: dict[str, Any] = response.json()
    assert set(envelope) == {"success", "data"} and envelope["success"] is True
    data: dict[str, Any] = envelope["data"]
    return data


async def all_pages(
    client: httpx.AsyncClient, auth: dict[str, str], limit: int
) -> list[list[dict[str, Any]]]:
    """Every page of getCampaigns, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/getCampaigns", params=params, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        pages.append(body["data"])
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


async def test_create_with_defaults(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A name alone gives max_attempts 3, every non-answer outcome retried, no contacts."""
    data = await create(client, auth, name="Q4 Sales Campaign")
    assert uuid.UUID(data["campaign_id"]).version == 4
    assert data["name"] == "Q4 Sales Campaign"
    assert data["max_attempts"] == 3
    assert set(data["retry_on"]) == DEFAULT_RETRY_ON and len(data["retry_on"]) == 4
    assert data["total_contacts"] == 0
    assert data["created_at"].endswith("Z")
    datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))


async def test_create_with_custom_settings(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """max_attempts and retry_on are kept; the name is trimmed; repeated outcomes collapse."""
    data = await create(
        client, auth, name="  Renewals  ", max_attempts=1, retry_on=["voicemail", "busy", "busy"]
    )
    assert data["name"] == "Renewals"
    assert data["max_attempts"] == 1
    assert sorted(data["retry_on"]) == ["busy", "voicemail"]


async def test_create_with_empty_retry_on(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """An empty retry_on means no outcome is retried, and stays empty (not the default)."""
    data = await create(client, auth, name="No retries", retry_on=[])
    assert data["retry_on"] == []
    fetched = await client.get(f"/getCampaign/{data['campaign_id']}", headers=auth)
    assert fetched.json()["data"]["retry_on"] == []


async def test_empty_retry_on_is_honoured_by_the_lifecycle(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """With retry_on [] a busy call fails the contact at once."""
    campaign_id = await new_campaign(client, auth, retry_on=[])
    phone = "+14155550100"
    await client.post(f"/addContacts/{campaign_id}", json={"contacts": [{"phone": phone}]}, headers=auth)
    event = {
        "campaign_id": campaign_id,
        "phone": phone,
        "call_id": "c1",
        "occurred_at": "2024-01-16T09:00:00Z",
    }
    events = [{**event, "event_id": "e1", "type": "call.ended", "outcome": "busy"}]
    response = await client.post("/recordCallEvents", json={"events": events}, headers=auth)
    assert response.json()["data"]["applied"] == 1, response.text
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert (stats["calls_failed"], stats["calls_pending"]) == (1, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 42}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "x", "max_attempts": 0}, "max_attempts"),
        ({"name": "x", "max_attempts": 101}, "max_attempts"),
        ({"name": "x", "max_attempts": 2.5}, "max_attempts"),
        ({"name": "x", "retry_on": "busy"}, "retry_on"),
        ({"name": "x", "retry_on": ["answered"]}, "retry_on"),
        ({"name": "x", "retry_on": ["BUSY"]}, "retry_on"),
        ({"name": "x", "retry_on": [None]}, "retry_on"),
        ({"name": "x", "status": "running"}, "status"),
    ],
)
async def test_invalid_campaigns_are_refused(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    """Each invalid input is a 400 naming the field, and no campaign is created."""
    response = await client.post("/createCampaign", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert field in response.json()["message"]
    listing = await client.get("/getCampaigns", headers=auth)
    assert listing.json()["data"] == []


async def test_get_campaign_matches_creation(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """getCampaign answers what createCampaign did, also for an upper-case id, and counts contacts."""
    created = await create(client, auth, name="Winback", max_attempts=2, retry_on=["no_answer"])
    campaign_id = created["campaign_id"]
    fetched = await client.get(f"/getCampaign/{campaign_id}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json() == {"success": True, "data": created}
    upper = await client.get(f"/getCampaign/{campaign_id.upper()}", headers=auth)
    assert upper.json()["data"] == created
    contacts = [{"phone": "+14155550100"}, {"phone": "+14155550101"}]
    await client.post(f"/addContacts/{campaign_id}", json={"contacts": contacts}, headers=auth)
    again = (await client.get(f"/getCampaign/{campaign_id}", headers=auth)).json()["data"]
    assert again["total_contacts"] == 2


async def test_unknown_campaign_is_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A well-formed id naming nothing is 'Campaign not found'."""
    response = await client.get(f"/getCampaign/{uuid.uuid4()}", headers=auth)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Campaign not found", "error": "NOT_FOUND"}


async def test_pagination_walks_every_campaign_once(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Pages of 3 over 8 campaigns: 3, 3, 2, newest first, no duplicate, none missing."""
    created = [await new_campaign(client, auth, name=f"Campaign {n}") for n in range(8)]
    pages = await all_pages(client, auth, limit=3)
    assert [len(page) for page in pages] == [3, 3, 2]
    seen = [c["campaign_id"] for page in pages for c in page]
    assert sorted(seen) == sorted(created)
    order = [(c["created_at"], c["campaign_id"]) for page in pages for c in page]
    assert order == sorted(order, reverse=True)


async def test_pagination_exact_multiple_and_single_page(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Four campaigns in pages of 2 are two pages; the default limit returns all on one."""
    created = {await new_campaign(client, auth) for _ in range(4)}
    pages = await all_pages(client, auth, limit=2)
    assert [len(page) for page in [p for p in pages if p]] == [2, 2]
    assert {c["campaign_id"] for page in pages for c in page} == created
    single = (await client.get("/getCampaigns", headers=auth)).json()
    assert {c["campaign_id"] for c in single["data"]} == created
    assert single["pagination"]["next_cursor"] is None


async def test_pagination_is_stable_while_campaigns_are_created(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A campaign created between pages does not shift the walk: nothing skipped or repeated."""
    created = [await new_campaign(client, auth) for _ in range(5)]
    first = (await client.get("/getCampaigns", params={"limit": 2}, headers=auth)).json()
    await new_campaign(client, auth, name="Late arrival")
    cursor = first["pagination"]["next_cursor"]
    rest: list[str] = []
    while cursor:
        page = (await client.get("/getCampaigns", params={"limit": 2, "cursor": cursor}, headers=auth)).json()
        rest += [c["campaign_id"] for c in page["data"]]
        cursor = page["pagination"]["next_cursor"]
    walked = [c["campaign_id"] for c in first["data"]] + rest
    assert sorted(walked) == sorted(created)


async def test_listing_is_per_account(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Each account lists only its own campaigns; a cursor does not open another account's list."""
    mine = {await new_campaign(client, auth) for _ in range(3)}
    other = {"x-api-key": make_key("globex")}
    empty = (await client.get("/getCampaigns", headers=other)).json()
    assert empty["data"] == [] and empty["pagination"]["next_cursor"] is None
    theirs = await new_campaign(client, other)
    assert [c["campaign_id"] for c in (await client.get("/getCampaigns", headers=other)).json()["data"]] == [
        theirs
    ]
    first = (await client.get("/getCampaigns", params={"limit": 1}, headers=auth)).json()
    cursor = first["pagination"]["next_cursor"]
    crossed = await client.get("/getCampaigns", params={"cursor": cursor}, headers=other)
    assert crossed.status_code == 200
    assert {c["campaign_id"] for c in crossed.json()["data"]} <= {theirs}
    assert {c["campaign_id"] for page in await all_pages(client, auth, limit=2) for c in page} == mine
    read_key = {"x-api-key": make_key("acme", "read")}
    assert {
        c["campaign_id"] for c in (await client.get("/getCampaigns", headers=read_key)).json()["data"]
    } == mine


@pytest.mark.parametrize("limit", ["2.0", "1e1", "true", " 2", "0x2", "99999999999999999999"])
async def test_limit_is_a_whole_number_written_with_digits(
    client: httpx.AsyncClient, auth: dict[str, str], limit: str
) -> None:
    """The query's text form of a strict integer: `2.0` is not coerced to 2 (one rule with the bodies)."""
    response = await client.get("/getCampaigns", params={"limit": limit}, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert "limit" in response.json()["message"]
