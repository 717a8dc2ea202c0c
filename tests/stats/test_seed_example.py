"""The project's first acceptance test: the seed's example, built through the public API only."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import new_campaign
from tests.factories import call_event
from tests.seed import SEED_EXAMPLE, SEED_FIELDS

SEED_DATA = {k: v for k, v in SEED_EXAMPLE.items() if k not in ("campaign_id", "started_at")}


def _event(n: int, phone: str, call: str, kind: str, **extra: Any) -> dict[str, Any]:
    at = "2024-01-16T09:00:00Z" if n == 0 else f"2024-01-16T10:{n // 1000 % 60:02d}:{n % 60:02d}Z"
    return {**call_event(extra.pop("campaign_id"), f"ev-{n}", call, kind, phone=phone, at=at), **extra}


def seed_events(campaign_id: str, phones: list[str]) -> list[dict[str, Any]]:
    """Events that put 1000 contacts exactly where the seed's example has them."""
    plan = ["answered"] * 750 + ["busy"] * 80 + ["no_answer"] * 50 + ["failed"] * 20 + ["voicemail"] * 100
    events: list[dict[str, Any]] = []
    for index, (phone, outcome) in enumerate(zip(phones, plan, strict=True)):
        duration = 245 if outcome == "answered" else 0
        call = f"call-{index}-1"
        events.append(_event(len(events), phone, call, "call.started", campaign_id=campaign_id))
        events.append(
            _event(
                len(events),
                phone,
                call,
                "call.ended",
                campaign_id=campaign_id,
                outcome=outcome,
                duration_seconds=duration,
            )
        )
        if outcome == "voicemail" and index % 2 == 0:  # half of the retries are dialing again
            events.append(
                _event(len(events), phone, f"call-{index}-2", "call.started", campaign_id=campaign_id)
            )
    return events


async def test_seed_example_field_for_field(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    campaign_id = await new_campaign(client, auth, name="Q4 Sales Campaign", retry_on=["voicemail"])
    contacts = [{"phone": f"+1415555{n:04d}", "name": f"Contact {n}"} for n in range(1000)]
    added = await client.post(f"/addContacts/{campaign_id}", json={"contacts": contacts}, headers=auth)
    assert added.status_code == 200, added.text
    assert added.json()["data"]["accepted"] == 1000
    events = seed_events(campaign_id, [c["phone"] for c in contacts])
    for start in range(0, len(events), 1000):
        response = await client.post(
            "/recordCallEvents", json={"events": events[start : start + 1000]}, headers=auth
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["rejected"] == 0, response.json()["data"]["results"][:3]

    stats = await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)
    assert stats.status_code == 200
    body = stats.json()
    assert body["success"] is True
    data = body["data"]
    assert data["campaign_id"] == campaign_id
    assert {k: data[k] for k in SEED_DATA} == SEED_DATA
    assert data["started_at"] == "2024-01-16T09:00:00Z"
    assert list(data) == SEED_FIELDS
