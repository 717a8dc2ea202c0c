"""The alerting routes: endpoints (secret shown once, private hosts refused), rules, tenancy, errors."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from callstats.accounts.service import create_key
from callstats.config import Settings
from tests.apps import serving
from tests.conftest import new_campaign

HOOK = "http://127.0.0.1:9/hook"


async def _endpoint(client: httpx.AsyncClient, auth: dict[str, str], **body: object) -> dict[str, object]:
    response = await client.post("/createWebhookEndpoint", json={"url": HOOK, **body}, headers=auth)
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def test_an_endpoint_shows_its_secret_once(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await _endpoint(client, auth, events=["campaign.completed", "alert.triggered"])
    assert str(created["secret"]).startswith("whsec_")
    assert created["events"] == ["alert.triggered", "campaign.completed"]
    listed = (await client.get("/getWebhookEndpoints", headers=auth)).json()["data"]["endpoints"]
    assert [e["endpoint_id"] for e in listed] == [created["endpoint_id"]]
    assert listed[0]["secret"] is None
    assert listed[0]["events"] == ["alert.triggered", "campaign.completed"]


async def test_rotation_gives_a_new_secret_and_keeps_the_old_one_a_day(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    created = await _endpoint(client, auth)
    rotated = await client.post(f"/rotateWebhookSecret/{created['endpoint_id']}", headers=auth)
    assert rotated.status_code == 200, rotated.text
    data = rotated.json()["data"]
    assert data["secret"].startswith("whsec_") and data["secret"] != created["secret"]
    assert data["previous_secret_expires_at"] is not None


async def test_delete_then_unknown(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await _endpoint(client, auth)
    path = f"/deleteWebhookEndpoint/{created['endpoint_id']}"
    assert (await client.post(path, headers=auth)).json()["data"]["deleted"] is True
    again = await client.post(path, headers=auth)
    assert again.status_code == 404 and again.json()["error"] == "NOT_FOUND"
    assert (await client.get("/getWebhookEndpoints", headers=auth)).json()["data"]["endpoints"] == []
    bad = await client.post("/deleteWebhookEndpoint/not-a-uuid", headers=auth)
    assert bad.status_code == 400 and bad.json()["error"] == "VALIDATION_ERROR"


async def test_another_account_sees_and_deletes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    created = await _endpoint(client, auth)
    other = {"x-api-key": make_key("globex")}
    assert (await client.get("/getWebhookEndpoints", headers=other)).json()["data"]["endpoints"] == []
    response = await client.post(f"/deleteWebhookEndpoint/{created['endpoint_id']}", headers=other)
    assert response.status_code == 404
    response = await client.post(f"/rotateWebhookSecret/{created['endpoint_id']}", headers=other)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_private_urls_are_refused_without_the_setting(settings: Settings, url: str) -> None:
    strict = settings.model_copy(update={"webhook_allow_private": False})
    async with serving(strict) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme", "write").plaintext}
        response = await http.post("/createWebhookEndpoint", json={"url": url}, headers=auth)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "VALIDATION_ERROR"
        assert "CALLSTATS_WEBHOOK_ALLOW_PRIVATE" in response.json()["message"]
        listed = await http.get("/getWebhookEndpoints", headers=auth)
        assert listed.json()["data"]["endpoints"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": HOOK, "events": ["alert.exploded"]}, "events"),
        ({"url": HOOK, "format": "teams"}, "format"),
        ({"url": HOOK, "campaign_id": "nope"}, "campaign_id"),
        ({"url": HOOK, "extra": 1}, "extra"),
    ],
)
async def test_bad_endpoint_bodies(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = await client.post("/createWebhookEndpoint", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]


async def test_unknown_campaign_is_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    campaign = "00000000-0000-4000-8000-000000000000"
    response = await client.post(
        "/createWebhookEndpoint", json={"url": HOOK, "campaign_id": campaign}, headers=auth
    )
    assert response.status_code == 404 and response.json()["error"] == "NOT_FOUND"
    rule = {"name": "r", "metric": "success_rate", "op": "<", "value": 20, "campaign_id": campaign}
    response = await client.post("/createAlertRule", json=rule, headers=auth)
    assert response.status_code == 404


async def test_rules_are_created_listed_and_deleted(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    campaign_id = await new_campaign(client, auth)
    body = {
        "name": "low success",
        "metric": "success_rate",
        "op": "<",
        "value": 20,
        "min_final_contacts": 200,
        "campaign_id": campaign_id,
    }
    created = await client.post("/createAlertRule", json=body, headers=auth)
    assert created.status_code == 201, created.text
    rule = created.json()["data"]
    assert {k: rule[k] for k in body} == {**body, "value": 20.0}
    listed = (await client.get("/getAlertRules", headers=auth)).json()["data"]["rules"]
    assert [r["rule_id"] for r in listed] == [rule["rule_id"]]
    path = f"/deleteAlertRule/{rule['rule_id']}"
    assert (await client.post(path, headers=auth)).status_code == 200
    assert (await client.post(path, headers=auth)).status_code == 404
    assert (await client.get("/getAlertRules", headers=auth)).json()["data"]["rules"] == []


@pytest.mark.parametrize(
    "change",
    [{"metric": "happiness"}, {"op": "=="}, {"value": "high"}, {"min_final_contacts": 0}, {"name": " "}],
)
async def test_bad_rules(client: httpx.AsyncClient, auth: dict[str, str], change: dict[str, object]) -> None:
    body = {"name": "r", "metric": "calls_failed", "op": ">", "value": 3, **change}
    response = await client.post("/createAlertRule", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"


async def test_a_read_key_may_not_create(client: httpx.AsyncClient, make_key: Callable[..., str]) -> None:
    reader = {"x-api-key": make_key("acme", "read")}
    response = await client.post("/createWebhookEndpoint", json={"url": HOOK}, headers=reader)
    assert response.status_code == 403
    assert (await client.get("/getWebhookEndpoints", headers=reader)).status_code == 200


async def test_deliveries_page_is_empty_then_bad_cursor(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    page = (await client.get("/getWebhookDeliveries", headers=auth)).json()
    assert page["data"] == [] and page["pagination"]["next_cursor"] is None
    bad = await client.get("/getWebhookDeliveries?cursor=zzz", headers=auth)
    assert bad.status_code == 400
    missing = await client.post("/retryWebhookDelivery/msg_nothing", headers=auth)
    assert missing.status_code == 404
