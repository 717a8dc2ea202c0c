"""Delivery end to end: events recorded through the API, alerts received by a real HTTP receiver on
loopback, every standard message verified with standardwebhooks.Webhook(secret).verify (the oracle)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from standardwebhooks import Webhook

from callstats.app import CallstatsApp
from callstats.db.schema import webhook_outbox
from tests.alerts.receiver import Received, Receiver, eventually
from tests.conftest import new_campaign
from tests.factories import ended_call, phones, record


async def _campaign(client: httpx.AsyncClient, auth: dict[str, str], contacts: int) -> tuple[str, list[str]]:
    """A campaign (one attempt per contact: any unanswered call is final) with `contacts` contacts."""
    campaign_id = await new_campaign(client, auth, max_attempts=1)
    numbers = phones(contacts)
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in numbers]}, headers=auth
    )
    assert added.status_code == 200 and added.json()["data"]["accepted"] == contacts
    return campaign_id, numbers


async def _endpoint(client: httpx.AsyncClient, auth: dict[str, str], url: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/createWebhookEndpoint", json={"url": url, **body}, headers=auth)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _rule(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/createAlertRule", json={"name": "rule", **body}, headers=auth)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _verified(received: Received, secret: str) -> dict[str, Any]:
    """The message's payload, once its signature verifies with the secret (raises otherwise)."""
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


async def _end(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, phone: str, outcome: str
) -> None:
    seconds = 30 if outcome == "answered" else 0
    answer = await record(
        client, auth, ended_call(campaign_id, phone, f"call-{campaign_id}-{phone}", outcome, seconds)
    )
    assert answer["applied"] == 1, answer


async def test_a_rule_triggers_resolves_and_the_campaign_completes(
    started: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    campaign_id, numbers = await _campaign(client, auth, 5)
    endpoint = await _endpoint(client, auth, receiver.url)
    rule = await _rule(client, auth, metric="success_rate", op="<", value=50, min_final_contacts=2)
    await _end(client, auth, campaign_id, numbers[0], "busy")  # 1 final: quiet
    await _end(client, auth, campaign_id, numbers[1], "busy")  # 0 % of 2: triggered
    for phone in numbers[2:]:  # 1/3, 2/4 (resolved: 50 is not < 50), 3/5 and the campaign completes
        await _end(client, auth, campaign_id, phone, "answered")
    await eventually(lambda: len(receiver.received) == 3, "three messages")
    payloads = [_verified(r, endpoint["secret"]) for r in receiver.received]
    assert [p["type"] for p in payloads] == ["alert.triggered", "alert.resolved", "campaign.completed"]
    triggered, resolved, completed = payloads
    assert triggered["data"]["rule"]["rule_id"] == rule["rule_id"]
    assert triggered["data"]["value"] == 0.0 and triggered["data"]["stats"]["calls_failed"] == 2
    assert resolved["data"]["value"] == 50.0 and resolved["data"]["stats"]["calls_completed"] == 2
    assert completed["data"]["campaign"]["campaign_id"] == campaign_id
    assert completed["data"]["stats"]["completed_at"] is not None
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(set(ids)) == 3
    deliveries = (await client.get("/getWebhookDeliveries", headers=auth)).json()["data"]
    assert {d["delivery_id"] for d in deliveries} == set(ids)
    assert all(d["status"] == "delivered" and len(d["attempts"]) == 1 for d in deliveries)
    assert all(d["attempts"][0]["status_code"] == 200 for d in deliveries)


async def test_receiver_down_then_up_everything_arrives_with_attempts_recorded(
    started: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    campaign_id, numbers = await _campaign(client, auth, 3)
    endpoint = await _endpoint(client, auth, receiver.url)
    await _rule(client, auth, metric="calls_failed", op=">=", value=1)
    receiver.stop()  # connections refused
    await _end(client, auth, campaign_id, numbers[0], "failed")
    await eventually(lambda: _attempts(started) >= 2, "two failed attempts (connection refused)")
    receiver.start()  # same port
    receiver.status = 503  # up, but answering an error
    await eventually(lambda: receiver.refused >= 1, "a 503 answered")
    receiver.status = 200
    for phone in numbers[1:]:
        await _end(client, auth, campaign_id, phone, "answered")
    await eventually(lambda: len(receiver.received) == 2, "the alert and the completion")
    payloads = [_verified(r, endpoint["secret"]) for r in receiver.received]
    assert sorted(p["type"] for p in payloads) == ["alert.triggered", "campaign.completed"]
    deliveries = (await client.get("/getWebhookDeliveries", headers=auth)).json()["data"]
    by_type = {d["event_type"]: d for d in deliveries}
    retried = by_type["alert.triggered"]
    assert retried["status"] == "delivered" and len(retried["attempts"]) >= 4
    assert retried["attempts"][0]["status_code"] is None and retried["attempts"][0]["error"]
    assert any(a["status_code"] == 503 for a in retried["attempts"])
    assert retried["attempts"][-1]["status_code"] == 200
    # every attempt carried the same webhook-id: the receiver saw it once, as the delivery's id
    assert [r.headers["webhook-id"] for r in receiver.of_type("alert.triggered")] == [retried["delivery_id"]]


def _attempts(app: CallstatsApp) -> int:
    with app.db.read() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(webhook_outbox.c.attempts), 0))).scalar_one())


async def test_slack_endpoint_gets_slacks_message_shape(
    started: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    campaign_id, numbers = await _campaign(client, auth, 2)
    await _endpoint(client, auth, receiver.url, format="slack", events=["alert.triggered"])
    await _rule(client, auth, name="too many failures", metric="calls_failed", op=">", value=0)
    await _end(client, auth, campaign_id, numbers[0], "no_answer")
    await eventually(lambda: len(receiver.received) == 1, "the Slack message")
    body = receiver.received[0].json()
    assert list(body) == ["text"]
    assert "too many failures" in body["text"] and campaign_id in body["text"]
    assert "calls_failed > 0" in body["text"] and "triggered" in body["text"]
    assert "webhook-signature" not in receiver.received[0].headers


async def test_endpoint_filters_by_event_and_campaign(
    started: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    watched, watched_numbers = await _campaign(client, auth, 1)
    other, other_numbers = await _campaign(client, auth, 1)
    endpoint = await _endpoint(client, auth, receiver.url, campaign_id=watched, events=["campaign.completed"])
    await _rule(client, auth, metric="calls_completed", op=">=", value=1)
    await _end(client, auth, other, other_numbers[0], "answered")
    await _end(client, auth, watched, watched_numbers[0], "answered")
    await eventually(lambda: len(receiver.received) >= 1, "the watched campaign's completion")
    payload = _verified(receiver.received[0], endpoint["secret"])
    assert payload["type"] == "campaign.completed" and payload["data"]["campaign"]["campaign_id"] == watched
    with started.db.read() as conn:
        queued = conn.execute(select(func.count()).select_from(webhook_outbox)).scalar_one()
    assert queued == 1  # nothing queued for what the endpoint does not take


async def test_after_rotation_both_secrets_verify_and_retry_resends_the_same_id(
    started: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    campaign_id, numbers = await _campaign(client, auth, 1)
    endpoint = await _endpoint(client, auth, receiver.url)
    rotated = (await client.post(f"/rotateWebhookSecret/{endpoint['endpoint_id']}", headers=auth)).json()[
        "data"
    ]
    await _end(client, auth, campaign_id, numbers[0], "answered")
    await eventually(lambda: len(receiver.received) == 1, "the completion")
    message = receiver.received[0]
    assert _verified(message, rotated["secret"])["type"] == "campaign.completed"
    assert _verified(message, endpoint["secret"])["type"] == "campaign.completed"
    delivery_id = message.headers["webhook-id"]
    again = await client.post(f"/retryWebhookDelivery/{delivery_id}", headers=auth)
    assert again.status_code == 200 and again.json()["data"]["status"] == "pending"
    await eventually(lambda: len(receiver.received) == 2, "the message sent again")
    assert receiver.received[1].headers["webhook-id"] == delivery_id
    assert receiver.received[1].body == message.body


async def test_deliveries_page_through_with_the_cursor(
    started: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    campaign_id, numbers = await _campaign(client, auth, 5)
    await _endpoint(client, auth, receiver.url)
    for n in range(5):  # one rule per threshold: each call ended crosses one
        await _rule(client, auth, name=f"at least {n + 1}", metric="calls_completed", op=">=", value=n + 1)
    for phone in numbers:
        await _end(client, auth, campaign_id, phone, "answered")
    await eventually(lambda: len(receiver.received) == 6, "five alerts and the completion")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "?limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/getWebhookDeliveries{query}", headers=auth)).json()
        seen += [d["delivery_id"] for d in page["data"]]
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r.headers["webhook-id"] for r in receiver.received)
    failed = (await client.get("/getWebhookDeliveries?status=failed", headers=auth)).json()["data"]
    assert failed == []


async def test_deleting_an_endpoint_fails_what_it_has_not_received(
    started: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], receiver: Receiver
) -> None:
    campaign_id, numbers = await _campaign(client, auth, 1)
    endpoint = await _endpoint(client, auth, receiver.url)
    receiver.stop()
    await _end(client, auth, campaign_id, numbers[0], "answered")
    await eventually(lambda: _attempts(started) >= 1, "a failed attempt")
    deleted = await client.post(f"/deleteWebhookEndpoint/{endpoint['endpoint_id']}", headers=auth)
    assert deleted.status_code == 200
    receiver.start()
    (delivery,) = (await client.get("/getWebhookDeliveries", headers=auth)).json()["data"]
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    retried = await client.post(f"/retryWebhookDelivery/{delivery['delivery_id']}", headers=auth)
    assert retried.status_code == 404  # nothing sends to a deleted endpoint
    after = (await client.get("/getWebhookDeliveries", headers=auth)).json()["data"]
    assert [d["status"] for d in after] == ["failed"]
