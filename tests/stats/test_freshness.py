"""Freshness: an acknowledged write shows in the very next stats read; ETag and If-None-Match revalidation."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import new_campaign
from tests.factories import call_event, record


async def stats(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, **headers: str
) -> httpx.Response:
    """One stats read, with extra request headers (if_none_match=... becomes If-None-Match)."""
    extra = {name.replace("_", "-"): value for name, value in headers.items()}
    return await client.get(f"/getCampaignStats/{campaign_id}", headers={**auth, **extra})


def event(campaign_id: str, n: int, phone: str, call_id: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A call event with a unique id."""
    at = f"2024-01-16T09:{n // 60 % 60:02d}:{n % 60:02d}Z"
    return {**call_event(campaign_id, f"ev-{n}", call_id, kind, phone=phone, at=at), **extra}


async def test_etag_and_conditional_requests(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A 200 has a quoted ETag, stable while nothing changes; If-None-Match with it is a bodiless 304."""
    campaign_id = await new_campaign(client, auth)
    first = await stats(client, auth, campaign_id)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    again = await stats(client, auth, campaign_id)
    assert again.headers["etag"] == etag and again.content == first.content
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        revalidated = await stats(client, auth, campaign_id, if_none_match=if_none_match)
        assert revalidated.status_code == 304, if_none_match
        assert revalidated.content == b""
        assert revalidated.headers["etag"] == etag
    stale = await stats(client, auth, campaign_id, if_none_match='"not-the-tag"')
    assert stale.status_code == 200 and stale.content == first.content


async def test_etag_differs_between_campaigns(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Two campaigns with identical numbers still have different tags (the body names the campaign)."""
    one, two = await new_campaign(client, auth, name="Same"), await new_campaign(client, auth, name="Same")
    tag = (await stats(client, auth, one)).headers["etag"]
    assert (await stats(client, auth, two)).headers["etag"] != tag
    assert (await stats(client, auth, two, if_none_match=tag)).status_code == 200


async def test_added_contacts_show_at_once(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """The read right after addContacts counts the new contacts and has a new ETag."""
    campaign_id = await new_campaign(client, auth)
    before = await stats(client, auth, campaign_id)
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": "+14155550100"}]}, headers=auth
    )
    assert added.status_code == 200
    after = await stats(client, auth, campaign_id, if_none_match=before.headers["etag"])
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert (after.json()["data"]["total_contacts"], after.json()["data"]["calls_pending"]) == (1, 1)


async def test_every_acknowledged_event_shows_in_the_next_read(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Event by event, the next read has moved and its old ETag no longer matches."""
    campaign_id = await new_campaign(client, auth, retry_on=[])
    phones = [f"+1415555{n:04d}" for n in range(12)]
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    etag = (await stats(client, auth, campaign_id)).headers["etag"]
    n = 0
    for index, phone in enumerate(phones):
        call = f"call-{index}"
        n += 1
        assert (await record(client, auth, event(campaign_id, n, phone, call, "call.started")))[
            "applied"
        ] == 1
        started = await stats(client, auth, campaign_id, if_none_match=etag)
        assert started.status_code == 200
        assert started.json()["data"]["calls_in_progress"] == 1
        assert started.json()["data"]["calls_pending"] == len(phones) - index - 1
        etag = started.headers["etag"]
        n += 1
        outcome = "answered" if index % 2 == 0 else "busy"
        ended = event(campaign_id, n, phone, call, "call.ended", outcome=outcome, duration_seconds=10 + index)
        assert (await record(client, auth, ended))["applied"] == 1
        finished = await stats(client, auth, campaign_id, if_none_match=etag)
        assert finished.status_code == 200
        data = finished.json()["data"]
        assert data["calls_in_progress"] == 0
        assert data["calls_completed"] == index // 2 + 1
        assert data["calls_failed"] == (index + 1) // 2
        assert data["call_status_breakdown"][outcome] == (
            index // 2 + 1 if outcome == "answered" else (index + 1) // 2
        )
        etag = finished.headers["etag"]
    assert data["completed_at"] is not None
    assert data["total_call_duration"] == sum(10 + i for i in range(0, len(phones), 2))


async def test_redelivered_event_changes_nothing(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A duplicate delivery leaves the numbers and the ETag as they were, so 304 still holds."""
    campaign_id = await new_campaign(client, auth)
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": "+14155550100"}]}, headers=auth
    )
    started = event(campaign_id, 1, "+14155550100", "call-1", "call.started")
    assert (await record(client, auth, started))["applied"] == 1
    current = await stats(client, auth, campaign_id)
    assert (await record(client, auth, started))["duplicate"] == 1
    revalidated = await stats(client, auth, campaign_id, if_none_match=current.headers["etag"])
    assert revalidated.status_code == 304


async def test_batch_is_visible_as_a_whole(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Right after a batch is acknowledged, the read reflects every event of it."""
    campaign_id = await new_campaign(client, auth)
    phones = [f"+1415555{n:04d}" for n in range(50)]
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    batch = [
        event(campaign_id, n, phone, f"call-{n}", "call.ended", outcome="answered", duration_seconds=60)
        for n, phone in enumerate(phones)
    ]
    assert (await record(client, auth, *batch))["applied"] == len(phones)
    data = (await stats(client, auth, campaign_id)).json()["data"]
    assert (data["calls_completed"], data["calls_pending"], data["total_call_duration"]) == (50, 0, 3000)
    assert data["success_rate"] == 100.0 and data["average_call_duration"] == 60
