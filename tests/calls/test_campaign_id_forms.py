"""An event's campaign_id in any form the event model accepts is applied and answered 200.

An id with spaces around it, in capitals, or in braces names the same campaign as its canonical form;
the answer once was a 500 after the event had been committed (the change feed re-read the raw id).
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import new_campaign
from tests.factories import call_event

PHONE = "+14155550100"


@pytest.mark.parametrize("form", ["  {id}  ", "\t{id}\n", "{upper}", "{{{id}}}", "urn:uuid:{id}"])
async def test_every_accepted_form_of_the_campaign_id_is_applied(
    client: httpx.AsyncClient, auth: dict[str, str], form: str
) -> None:
    campaign_id = await new_campaign(client, auth)
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": PHONE}]}, headers=auth
    )
    assert added.status_code == 200, added.text
    sent = form.format(id=campaign_id, upper=campaign_id.upper())
    event = call_event(campaign_id, "ev1", "call1", "call.started", phone=PHONE)
    event["campaign_id"] = sent

    response = await client.post("/recordCallEvents", json={"events": [event]}, headers=auth)

    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["data"]["results"]] == ["applied"]
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert (stats["calls_in_progress"], stats["calls_pending"]) == (1, 0)
