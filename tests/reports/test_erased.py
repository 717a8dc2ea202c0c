"""An erased contact (forgetContact) shows as erased in drill-down and exports: no phone, name or
metadata, `erased_at` set; its state and outcome still counted."""

from __future__ import annotations

import csv
import io

import httpx

from tests.conftest import new_campaign


async def test_an_erased_contact_shows_erased_in_pages_and_exports(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    campaign_id = await new_campaign(client, auth)
    rows = [
        {"phone": "+14155550101", "name": "Ada Erased", "metadata": {"crm": "x-1"}},
        {"phone": "+14155550102", "name": "Kept Person"},
    ]
    added = await client.post(f"/addContacts/{campaign_id}", json={"contacts": rows}, headers=auth)
    assert added.status_code in (200, 201), added.text
    listed = (await client.get(f"/getContacts/{campaign_id}", headers=auth)).json()["data"]
    erased_id = next(c["contact_id"] for c in listed if c["phone"] == "+14155550101")
    forgot = await client.post(f"/forgetContact/{campaign_id}/{erased_id}", headers=auth)
    assert forgot.status_code == 200, forgot.text

    listed = (await client.get(f"/getContacts/{campaign_id}", headers=auth)).json()["data"]
    by_id = {c["contact_id"]: c for c in listed}
    erased = by_id.pop(erased_id)
    assert (erased["phone"], erased["name"], erased["metadata"]) == (None, None, {})
    assert erased["erased_at"] is not None and erased["state"] == "pending"
    assert [c["erased_at"] for c in by_id.values()] == [None]
    one = (await client.get(f"/getContact/{campaign_id}/{erased_id}", headers=auth)).json()["data"]
    assert one["phone"] is None and one["erased_at"] == erased["erased_at"]

    exported = await client.get(f"/exportContacts/{campaign_id}?format=csv", headers=auth)
    text = exported.content.decode("utf-8-sig")
    assert "Ada" not in text and "4155550101" not in text and "x-1" not in text
    records = list(csv.DictReader(io.StringIO(text)))
    assert [r["erased_at"] != "" for r in records].count(True) == 1
