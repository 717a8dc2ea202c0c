"""addContacts: JSON and CSV, E.164 normalization, duplicates, invalid rows, limits, atomicity."""

from __future__ import annotations

from typing import Any

import httpx

from callstats.app import CallstatsApp
from tests.conftest import new_campaign, stored_contacts
from tests.factories import CSV, add, total_contacts


def phones(n: int, start: int = 0) -> list[dict[str, str]]:
    """n distinct valid US numbers."""
    return [{"phone": f"+1415{(start + i) // 10000 + 200:03d}{(start + i) % 10000:04d}"} for i in range(n)]


async def test_json_contacts_are_normalized_to_e164(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """National, punctuated and international forms are stored in E.164, with name and metadata."""
    campaign_id = await new_campaign(client, auth)
    body = {
        "contacts": [
            {"phone": "(415) 555-0101", "name": "Ann", "metadata": {"tier": "gold"}},
            {"phone": "415.555.0102"},
            {"phone": "+1 415 555 0103", "name": "Cy"},
            {"phone": "+44 20 7183 8750"},
            {"phone": "+91 98765 43210"},
        ]
    }
    data = await add(client, auth, campaign_id, json=body)
    assert data == {
        "received": 5, "accepted": 5, "duplicate": 0, "invalid": 0, "errors": [], "duplicates": []
    }  # fmt: skip
    assert stored_contacts(app, campaign_id) == {
        "+14155550101": ("Ann", {"tier": "gold"}),
        "+14155550102": (None, None),
        "+14155550103": ("Cy", None),
        "+442071838750": (None, None),
        "+919876543210": (None, None),
    }
    assert await total_contacts(client, auth, campaign_id) == 5


async def test_duplicates_inside_the_request_and_against_the_campaign(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The same number in another form is a duplicate, within one request and across requests."""
    campaign_id = await new_campaign(client, auth)
    first = await add(
        client,
        auth,
        campaign_id,
        json={"contacts": [{"phone": "+14155550101"}, {"phone": "(415) 555-0101"}, {"phone": "4155550102"}]},
    )
    assert (first["received"], first["accepted"], first["duplicate"], first["invalid"]) == (3, 2, 1, 0)
    second = await add(
        client,
        auth,
        campaign_id,
        json={"contacts": [{"phone": "+1 (415) 555-0102"}, {"phone": "+14155550103"}]},
    )
    assert (second["received"], second["accepted"], second["duplicate"], second["invalid"]) == (2, 1, 1, 0)
    assert sorted(stored_contacts(app, campaign_id)) == ["+14155550101", "+14155550102", "+14155550103"]
    assert await total_contacts(client, auth, campaign_id) == 3


async def test_same_number_in_two_campaigns_is_not_a_duplicate(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Uniqueness is per campaign."""
    one, two = await new_campaign(client, auth), await new_campaign(client, auth)
    for campaign_id in (one, two):
        data = await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550101"}]})
        assert data["accepted"] == 1


async def test_invalid_rows_are_reported_with_row_and_reason(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Each invalid row is listed (1-based row, the phone sent, why) and the valid rows are stored."""
    campaign_id = await new_campaign(client, auth)
    rows: list[Any] = [
        {"phone": "+14155550101"},
        {"phone": "not a phone"},
        {"phone": ""},
        {"name": "No phone"},
        "+14155550102",
        {"phone": "12"},
        {"phone": "+14155550103", "metadata": "vip"},
        {"phone": "+14155550104", "name": 7},
        {"phone": "+14155550105"},
    ]
    data = await add(client, auth, campaign_id, json={"contacts": rows})
    assert (data["received"], data["accepted"], data["duplicate"], data["invalid"]) == (9, 2, 0, 7)
    errors = data["errors"]
    assert [e["row"] for e in errors] == [2, 3, 4, 5, 6, 7, 8]
    assert all(set(e) == {"row", "phone", "reason"} and e["reason"].strip() for e in errors)
    assert errors[0]["phone"] == "not a phone"
    assert errors[1]["phone"] == ""
    assert "metadata" in errors[5]["reason"]
    assert "name" in errors[6]["reason"]
    assert sorted(stored_contacts(app, campaign_id)) == ["+14155550101", "+14155550105"]


async def test_csv_upload(app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A CSV with a header row: quoted fields, extra columns kept as metadata, bad rows reported."""
    campaign_id = await new_campaign(client, auth)
    body = (
        "phone,name,city\n"
        '"(415) 555-0101","Smith, Jane",Oakland\n'
        ",Nobody,\n"
        "not-a-phone,Bob,\n"
        "+1 415 555 0101,Jane again,\n"
        "+14155550102,,\n"
    )
    data = await add(client, auth, campaign_id, content=body.encode(), headers=CSV)
    assert (data["received"], data["accepted"], data["duplicate"], data["invalid"]) == (5, 2, 1, 2)
    assert [(e["row"], e["phone"]) for e in data["errors"]] == [(2, ""), (3, "not-a-phone")]
    assert stored_contacts(app, campaign_id) == {
        "+14155550101": ("Smith, Jane", {"city": "Oakland"}),
        "+14155550102": (None, None),
    }


async def test_csv_header_variants(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A BOM, capitalised headers, CRLF line ends and a charset parameter are all accepted."""
    campaign_id = await new_campaign(client, auth)
    body = "\ufeffPhone,Name\r\n4155550101,Ann\r\n4155550102,Bo\r\n".encode()
    headers = {"content-type": "text/csv; charset=utf-8"}
    data = await add(client, auth, campaign_id, content=body, headers=headers)
    assert (data["accepted"], data["invalid"]) == (2, 0)
    only_header = await add(client, auth, campaign_id, content=b"phone,name\n", headers=CSV)
    assert (only_header["received"], only_header["accepted"]) == (0, 0)


async def test_csv_without_phone_column_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A CSV whose header has no phone column is refused whole."""
    campaign_id = await new_campaign(client, auth)
    response = await client.post(
        f"/addContacts/{campaign_id}", content=b"email,name\n4155550101,Ann\n", headers={**auth, **CSV}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "VALIDATION_ERROR" and "phone" in response.json()["message"]
    assert await total_contacts(client, auth, campaign_id) == 0


async def test_ten_thousand_contacts_are_accepted(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """The documented maximum of 10,000 in one request goes through."""
    campaign_id = await new_campaign(client, auth)
    data = await add(client, auth, campaign_id, json={"contacts": phones(10_000)})
    assert (data["received"], data["accepted"], data["invalid"]) == (10_000, 10_000, 0)
    assert await total_contacts(client, auth, campaign_id) == 10_000


async def test_over_ten_thousand_is_400_and_stores_nothing(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """10,001 contacts (JSON or CSV) are refused whole: the campaign is exactly as before."""
    campaign_id = await new_campaign(client, auth)
    await add(client, auth, campaign_id, json={"contacts": phones(2)})
    too_many = phones(10_001, start=100)
    response = await client.post(f"/addContacts/{campaign_id}", json={"contacts": too_many}, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert "contacts" in response.json()["message"] and "10000" in response.json()["message"].replace(",", "")
    csv_body = "phone\n" + "\n".join(c["phone"] for c in too_many) + "\n"
    response = await client.post(
        f"/addContacts/{campaign_id}", content=csv_body.encode(), headers={**auth, **CSV}
    )
    assert response.status_code == 400, response.text
    assert await total_contacts(client, auth, campaign_id) == 2
    assert len(stored_contacts(app, campaign_id)) == 2


async def test_malformed_body_stores_nothing(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A body that is not the expected shape is a 400 and the campaign is unchanged."""
    campaign_id = await new_campaign(client, auth)
    for content in (b'{"contacts": [{"phone": "+14155550101"}', b'{"contacts": {"phone": "+14155550101"}}'):
        response = await client.post(f"/addContacts/{campaign_id}", content=content, headers=auth)
        assert response.status_code == 400, response.text
    assert await total_contacts(client, auth, campaign_id) == 0


async def test_adding_contacts_reopens_a_completed_campaign(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Once every contact is final completed_at is set; a new contact sets it back to null."""
    campaign_id = await new_campaign(client, auth)
    await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550101"}]})
    event = {
        "event_id": "e1",
        "campaign_id": campaign_id,
        "phone": "+14155550101",
        "call_id": "c1",
        "type": "call.ended",
        "outcome": "answered",
        "duration_seconds": 30,
        "occurred_at": "2024-01-16T09:05:00Z",
    }
    recorded = await client.post("/recordCallEvents", json={"events": [event]}, headers=auth)
    assert recorded.json()["data"]["applied"] == 1, recorded.text
    done = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert done["completed_at"] == "2024-01-16T09:05:00Z"
    await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550102"}]})
    reopened = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert reopened["completed_at"] is None
    assert (reopened["total_contacts"], reopened["calls_completed"], reopened["calls_pending"]) == (2, 1, 1)
    duplicate_only = await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550101"}]})
    assert duplicate_only["duplicate"] == 1
