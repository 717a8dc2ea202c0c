"""Bodies sent without a JSON or CSV Content-Type (none, `text/plain`, curl -d's form type) are read
by what they hold: JSON when it parses, a CSV with a phone column as CSV, anything else a clear 400."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from callstats.app import CallstatsApp
from tests.conftest import new_campaign, stored_contacts
from tests.factories import add, total_contacts

UNDECLARED = [
    pytest.param({}, id="no-content-type"),
    pytest.param({"content-type": "text/plain"}, id="text-plain"),
    pytest.param({"content-type": "application/x-www-form-urlencoded"}, id="curl-d"),
]


@pytest.mark.parametrize("headers", UNDECLARED)
async def test_json_and_csv_are_read_without_their_content_type(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], headers: dict[str, str]
) -> None:
    """A JSON body is read as JSON, a CSV whose header names a phone column as CSV."""
    campaign_id = await new_campaign(client, auth)
    as_json = json.dumps({"contacts": [{"phone": "+14155550101", "name": "Ann"}]}).encode()
    as_csv = b"Phone Number;Name\n+14155550102;Bob\n"
    for body in (as_json, as_csv):
        data = await add(client, auth, campaign_id, content=body, headers=headers)
        assert (data["accepted"], data["invalid"]) == (1, 0)
    assert stored_contacts(app, campaign_id) == {"+14155550101": ("Ann", None), "+14155550102": ("Bob", None)}


@pytest.mark.parametrize("headers", UNDECLARED)
@pytest.mark.parametrize("body", [b"phone=%2B14155550101&name=Ann", b"hello", b"\xff\xfe\xfa", b""])
async def test_a_body_neither_json_nor_csv_names_the_accepted_types(
    client: httpx.AsyncClient, auth: dict[str, str], headers: dict[str, str], body: bytes
) -> None:
    """A form body, plain text, bytes that are not text, nothing: 400 naming both Content-Types."""
    campaign_id = await new_campaign(client, auth)
    response = await client.post(f"/addContacts/{campaign_id}", content=body, headers={**auth, **headers})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert "neither JSON nor a CSV" in message
    assert "application/json" in message and "text/csv" in message
    assert await total_contacts(client, auth, campaign_id) == 0


async def test_a_broken_json_body_is_reported_as_json(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A body starting with `{` is meant as JSON: without a Content-Type its error is the JSON one."""
    campaign_id = await new_campaign(client, auth)
    response = await client.post(
        f"/addContacts/{campaign_id}",
        content=b'{"contacts": [',
        headers={**auth, "content-type": "text/plain"},
    )
    assert response.status_code == 400
    assert response.json()["message"] == "body: not valid JSON"


async def test_declared_types_are_not_second_guessed(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """CSV sent as application/json is a JSON error; JSON sent as text/csv is a CSV without a phone
    column: the declared type is the one read."""
    campaign_id = await new_campaign(client, auth)
    csv_as_json = await client.post(
        f"/addContacts/{campaign_id}",
        content=b"phone\n+14155550101\n",
        headers={**auth, "content-type": "application/json"},
    )
    assert csv_as_json.status_code == 400 and "not valid JSON" in csv_as_json.json()["message"]
    json_as_csv = await client.post(
        f"/addContacts/{campaign_id}",
        content=b'{"contacts": [{"phone": "+14155550101"}]}',
        headers={**auth, "content-type": "text/csv"},
    )
    assert json_as_csv.status_code == 400 and "no phone column" in json_as_csv.json()["message"]
    assert await total_contacts(client, auth, campaign_id) == 0


@pytest.mark.parametrize("headers", UNDECLARED)
async def test_create_campaign_and_record_call_events_read_json_whatever_the_type(
    client: httpx.AsyncClient, auth: dict[str, str], headers: dict[str, str]
) -> None:
    """curl -d without -H: createCampaign and recordCallEvents read the JSON body all the same."""
    created = await client.post("/createCampaign", content=b'{"name": "Spring"}', headers={**auth, **headers})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["data"]["campaign_id"]
    await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550101"}]})
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event = {
        "event_id": "ev1",
        "campaign_id": campaign_id,
        "phone": "+14155550101",
        "call_id": "call1",
        "type": "call.started",
        "occurred_at": now,
    }
    recorded = await client.post(
        "/recordCallEvents", content=json.dumps({"events": [event]}).encode(), headers={**auth, **headers}
    )
    assert recorded.status_code == 200, recorded.text
    assert [r["status"] for r in recorded.json()["data"]["results"]] == ["applied"]


async def test_create_campaign_from_a_form_body_says_it_reads_json(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """curl -d name=Spring: a 400 showing the JSON object expected."""
    response = await client.post(
        "/createCampaign",
        content=b"name=Spring",
        headers={**auth, "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("body: not valid JSON; createCampaign reads its body as a JSON object")
    assert '{"name": "Spring"}' in message
