"""Durability with real server processes (tests/servers.py): a message committed but not yet sent when
the server is SIGKILLed is delivered after a restart; two servers on one PostgreSQL send each message
once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from standardwebhooks import Webhook

from tests.alerts.receiver import Receiver, eventually
from tests.conftest import PG_URL
from tests.factories import add_contacts, ended_call, phones, record_events
from tests.servers import issue_key, running_servers, server_env, start_server


def _env(database_url: str, **settings: str) -> dict[str, str]:
    return server_env(
        database_url,
        secret_key=Fernet.generate_key().decode(),
        webhook_allow_private="true",
        webhook_retry_base_seconds="0.05",
        **settings,
    )


def _setup(
    http: httpx.Client, base_url: str, receiver: Receiver, contacts: int
) -> tuple[str, list[str], str]:
    """A campaign (one attempt per contact) with contacts, an endpoint on the receiver; the campaign id,
    its phones and the endpoint's secret."""
    response = http.post(f"{base_url}/createCampaign", json={"name": "durable", "max_attempts": 1})
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["data"]["campaign_id"]
    numbers = phones(contacts)
    assert add_contacts(http, base_url, campaign_id, numbers)["accepted"] == contacts
    created = http.post(f"{base_url}/createWebhookEndpoint", json={"url": receiver.url})
    assert created.status_code == 201, created.text
    return campaign_id, numbers, created.json()["data"]["secret"]


def _deliveries(http: httpx.Client, base_url: str) -> list[dict[str, Any]]:
    page = http.get(f"{base_url}/getWebhookDeliveries?limit=200")
    assert page.status_code == 200, page.text
    data: list[dict[str, Any]] = page.json()["data"]
    return data


async def test_a_message_committed_before_a_sigkill_is_delivered_after_restart(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    # The dispatcher looks once at start-up, then not for an hour: what is committed after stays unsent.
    env = _env(database_url, webhook_poll_seconds="3600", alert_timer_seconds="3600")
    key = issue_key(env)
    server = start_server(env, tmp_path)
    try:
        with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
            campaign_id, numbers, secret = _setup(http, server.base_url, receiver, 1)
            record_events(http, server.base_url, [ended_call(campaign_id, numbers[0], "c-1", "answered", 9)])
            queued = _deliveries(http, server.base_url)
            assert [(d["event_type"], d["status"], d["attempts"]) for d in queued] == [
                ("campaign.completed", "pending", [])
            ]
            server.kill()  # SIGKILL: committed, never sent
            assert receiver.received == []
            server = start_server(
                {**env, "CALLSTATS_WEBHOOK_POLL_SECONDS": "0.05"}, tmp_path, port=server.port
            )
            await eventually(lambda: len(receiver.received) == 1, "the completion, after the restart")
            message = receiver.received[0]
            assert Webhook(secret).verify(message.body, message.headers)["type"] == "campaign.completed"
            assert message.headers["webhook-id"] == queued[0]["delivery_id"]
            await eventually(
                lambda: _deliveries(http, server.base_url)[0]["status"] == "delivered", "the attempt recorded"
            )
    finally:
        server.stop()


@pytest.mark.skipif(not PG_URL, reason="no CALLSTATS_TEST_DATABASE_URL")
async def test_two_servers_on_postgresql_send_every_message_once(
    pg_migrated: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = _env(pg_migrated, webhook_poll_seconds="0.02")
    key = issue_key(env)
    campaigns = 6
    with running_servers(env, tmp_path, count=2) as servers, httpx.Client(headers={"x-api-key": key}) as http:
        base = servers[0].base_url
        created = [_setup(http, base, receiver, 2) for _ in range(campaigns)]
        rule = {"name": "a failure", "metric": "calls_failed", "op": ">=", "value": 1}
        assert http.post(f"{base}/createAlertRule", json=rule).status_code == 201
        for n, (campaign_id, numbers, _) in enumerate(created):  # each campaign: triggered, then completed
            target = servers[n % 2].base_url  # writes on both servers
            record_events(http, target, [ended_call(campaign_id, numbers[0], f"{campaign_id}-0", "busy")])
            record_events(
                http, target, [ended_call(campaign_id, numbers[1], f"{campaign_id}-1", "answered", 5)]
            )
        # every endpoint (one per campaign, each taking the whole account) receives every message
        expected = campaigns * campaigns * 2
        await eventually(lambda: len(receiver.received) >= expected, f"{expected} messages")
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(ids) == expected and len(set(ids)) == expected  # each sent once
        with httpx.Client(headers={"x-api-key": key}) as reader:
            statuses: list[str] = []
            cursor = None
            while True:
                query = "?limit=200" + (f"&cursor={cursor}" if cursor else "")
                page = reader.get(f"{servers[1].base_url}/getWebhookDeliveries{query}").json()
                statuses += [d["status"] for d in page["data"]]
                assert all(len(d["attempts"]) == 1 for d in page["data"])
                cursor = page["pagination"]["next_cursor"]
                if cursor is None:
                    break
        assert statuses == ["delivered"] * expected
