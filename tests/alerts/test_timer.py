"""The timer's evaluation (alerts/outbox.timed, run by the dispatcher): what only time changes,
`minutes_since_last_event` rules and `campaign.stalled`, on an app whose clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp, create_app
from callstats.clock import now_ms
from callstats.config import Settings
from tests.conftest import new_campaign
from tests.factories import ended_call, record

MINUTE = 60_000


class MovableClock:
    """The server's time: the wall clock's at the start, moved forward by the test."""

    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def timed_app(settings: Settings) -> AsyncIterator[tuple[CallstatsApp, MovableClock]]:
    clock = MovableClock()
    application = create_app(settings, clock=clock)
    yield application, clock
    await application.aclose()


async def test_quiet_campaigns_trigger_rules_and_stall_on_the_timer(
    timed_app: tuple[CallstatsApp, MovableClock],
) -> None:
    app, clock = timed_app
    auth = {"x-api-key": create_key(app.db, "acme", "write").plaintext}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        campaign_id = await new_campaign(client, auth, max_attempts=1, stall_after_minutes=15)
        phones = ["+14155550100", "+14155550101"]
        added = await client.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
        )
        assert added.status_code == 200
        endpoint = {"url": "http://127.0.0.1:9/hook", "events": ["alert.triggered", "campaign.stalled"]}
        assert (await client.post("/createWebhookEndpoint", json=endpoint, headers=auth)).status_code == 201
        rule = {"name": "quiet", "metric": "minutes_since_last_event", "op": ">=", "value": 10}
        assert (await client.post("/createAlertRule", json=rule, headers=auth)).status_code == 201
        await record(client, auth, ended_call(campaign_id, phones[0], "c-0", "busy"))

        async def queued() -> list[str]:
            await asyncio.to_thread(app.webhooks.evaluate_timed)
            page = (await client.get("/getWebhookDeliveries", headers=auth)).json()["data"]
            return sorted(d["event_type"] for d in page)

        clock.now += 9 * MINUTE
        assert await queued() == []
        clock.now += 1 * MINUTE  # 10 minutes without an event
        assert await queued() == ["alert.triggered"]
        clock.now += 5 * MINUTE  # 15: stalled too; the rule stays triggered, not repeated
        assert await queued() == ["alert.triggered", "campaign.stalled"]
        assert await queued() == ["alert.triggered", "campaign.stalled"]
        page = (await client.get("/getWebhookDeliveries", headers=auth)).json()["data"]
        triggered = next(d for d in page if d["event_type"] == "alert.triggered")
        assert triggered["payload"]["data"]["value"] == 10.0
        assert triggered["status"] == "pending" and triggered["attempts"] == []
