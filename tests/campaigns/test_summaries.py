"""getCampaignSummaries: a list's figures for many campaigns, equal to getCampaignStats', quota-free."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from callstats.app import CallstatsApp, create_app
from callstats.config import Settings
from tests.conftest import new_campaign
from tests.factories import ended_call, record, started_call

SUMMARY_FIELDS = (
    "total_contacts",
    "calls_completed",
    "calls_failed",
    "calls_in_progress",
    "calls_pending",
    "success_rate",
)


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[CallstatsApp]:
    """The app with a stats limit of one request a minute per campaign."""
    application = create_app(
        Settings(database_url=database_url, redis_url=None, counter_slots=4, stats_rate_limit="1/minute")
    )
    yield application
    await application.aclose()


async def summaries(client: httpx.AsyncClient, auth: dict[str, str], ids: str) -> httpx.Response:
    """One getCampaignSummaries request."""
    return await client.get("/getCampaignSummaries", params={"campaignIds": ids}, headers=auth)


async def campaign_with_calls(
    client: httpx.AsyncClient, auth: dict[str, str], outcomes: list[str | None], max_attempts: int = 3
) -> str:
    """A campaign of len(outcomes) + 1 contacts; contact i gets a call ending in outcomes[i] (None: live)."""
    campaign_id = await new_campaign(client, auth, max_attempts=max_attempts)
    phones = [f"+1415300{i:04d}" for i in range(len(outcomes) + 1)]
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    assert added.status_code == 200, added.text
    events: list[dict[str, Any]] = []
    for i, outcome in enumerate(outcomes):
        call_id = f"c{i}-{uuid.uuid4().hex[:8]}"
        events.append(started_call(campaign_id, phones[i], call_id))
        if outcome is not None:
            events.append(ended_call(campaign_id, phones[i], call_id, outcome, 30))
    await record(client, auth, *events)
    return campaign_id


async def test_summaries_equal_the_stats_fields(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Each summary holds exactly getCampaignStats' figures of the same name, in the order asked."""
    one = await campaign_with_calls(client, auth, ["answered", "busy", None, "failed"], max_attempts=1)
    two = await campaign_with_calls(client, auth, ["no_answer", "answered", "answered"])
    empty = await new_campaign(client, auth)
    response = await summaries(client, auth, f"{two}, {one},{empty},{two.upper()}")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [s["campaign_id"] for s in data] == [two, one, empty]
    for summary in data:
        stats = await client.get(f"/getCampaignStats/{summary['campaign_id']}", headers=auth)
        assert stats.status_code == 200, stats.text
        expected = {name: stats.json()["data"][name] for name in SUMMARY_FIELDS}
        assert summary == {"campaign_id": summary["campaign_id"], **expected}
    assert data[1]["calls_failed"] == 2 and data[1]["success_rate"] == 33.33
    assert data[2]["total_contacts"] == 0 and data[2]["success_rate"] == 0


async def test_summaries_do_not_spend_the_stats_quota(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """With one stats request a minute, many summaries leave the campaign's one request untouched."""
    campaign_id = await campaign_with_calls(client, auth, ["answered"])
    for _ in range(5):
        assert (await summaries(client, auth, campaign_id)).status_code == 200
    first = await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)
    assert first.status_code == 200, first.text
    second = await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert (await summaries(client, auth, campaign_id)).status_code == 200  # nor is it limited by it


async def test_other_accounts_and_unknown_ids_are_left_out(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Another account's campaign and an id of no campaign are absent, as if they did not exist."""
    mine = await new_campaign(client, auth)
    other = {"x-api-key": make_key("globex", "read")}
    theirs = await new_campaign(client, {"x-api-key": make_key("globex")})
    response = await summaries(client, auth, f"{theirs},{uuid.uuid4()},{mine}")
    assert [s["campaign_id"] for s in response.json()["data"]] == [mine]
    assert [s["campaign_id"] for s in (await summaries(client, other, mine)).json()["data"]] == []


@pytest.mark.parametrize(
    ("ids", "says"),
    [
        ("not-a-uuid", "'not-a-uuid' is not a UUID"),
        (" , ,", "at least one campaign id"),
        (",".join(str(uuid.uuid4()) for _ in range(201)), "at most 200 ids, got 201"),
    ],
)
async def test_bad_ids_are_a_clear_400(
    client: httpx.AsyncClient, auth: dict[str, str], ids: str, says: str
) -> None:
    """Malformed, empty or too many ids: 400 VALIDATION_ERROR naming campaignIds and what is wrong."""
    response = await summaries(client, auth, ids)
    body = response.json()
    assert response.status_code == 400 and body["error"] == "VALIDATION_ERROR", body
    assert "campaignIds" in body["message"] and says in body["message"]


async def test_missing_ids_and_missing_key(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """No campaignIds is a 400; no key is a 401, both in the error envelope."""
    missing = await client.get("/getCampaignSummaries", headers=auth)
    assert missing.status_code == 400 and missing.json()["success"] is False
    assert missing.json()["message"] == "campaignIds: give at least one campaign id"  # as an empty one
    unauthenticated = await client.get("/getCampaignSummaries", params={"campaignIds": str(uuid.uuid4())})
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "UNAUTHORIZED"
