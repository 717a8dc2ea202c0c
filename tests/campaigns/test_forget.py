"""forgetContact: the person's phone (in every form), name, metadata and raw carrier callbacks leave
every table, while every statistic stays byte for byte what it was and reconcile finds no difference;
a repeat is safe; later events find the contact by id only."""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp
from callstats.config import Settings
from callstats.db.schema import contacts
from callstats.stats.reconcile import differences
from tests.campaigns.stored import cells_holding, text_cells
from tests.carriers.webhook_kit import (
    T0,
    assert_acknowledged,
    deliver,
    hooked,
    phone,
    twilio_call,
    twilio_signature,
)
from tests.conftest import new_campaign
from tests.factories import ended_call, record, started_call
from tests.oracle import (
    BASE_MS,
    RETRYABLE,
    Rules,
    SeededChoices,
    batches,
    interleave,
    phone_of,
    simulate_contact,
    written_forms,
)

STATS_VIEWS = ("", "?include=attempts,durations,raw_outcomes")


async def figures(http: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> list[bytes]:
    """Every statistic of the campaign as the API answers it: stats (plain and with every section),
    its time series, its summary, its ETag."""
    answers = [await http.get(f"/getCampaignStats/{campaign_id}{view}", headers=auth) for view in STATS_VIEWS]
    answers.append(await http.get(f"/getCampaignTimeseries/{campaign_id}", headers=auth))
    answers.append(await http.get("/getCampaignSummaries", params={"campaignIds": campaign_id}, headers=auth))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.content for a in answers] + [answers[0].headers["etag"].encode()]


def contact_id_of(app: CallstatsApp, campaign_id: str, e164: str) -> int:
    """The id of the campaign's contact with this phone, read from the database."""
    query = select(contacts.c.id).where(contacts.c.campaign_id == campaign_id, contacts.c.phone == e164)
    with app.db.read() as conn:
        return int(conn.execute(query).scalar_one())


def traces(number: int, name: str, secret: str) -> list[str]:
    """What must not be stored of contact `number` once forgotten: its phone as E.164, its digits, its
    national digits, every way it was written, its name and a metadata value."""
    e164 = phone_of(number)
    return [e164, e164[1:], e164[2:], *written_forms(number), name, secret]


async def forget(
    http: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, contact_id: int
) -> dict[str, Any]:
    """forgetContact's 200 data."""
    response = await http.post(f"/forgetContact/{campaign_id}/{contact_id}", headers=auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.mark.parametrize("seed", [3, 17, 29, 41])
async def test_forgetting_a_random_contact_changes_no_statistic(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, seed: int
) -> None:
    """A random campaign (the oracle's simulated dialer, contacts written in national forms with names
    and metadata): after forgetContact on one of them, no text cell of any table holds its phone in any
    form, its name or its metadata; the other contacts' are still there; every statistic is the same
    bytes and reconcile finds no difference; a repeat answers the same erasure and changes nothing."""
    chooser = SeededChoices(seed)
    rng = random.Random(seed)
    rules = Rules(chooser.integer(1, 4), frozenset(o for o in RETRYABLE if chooser.integer(0, 3)))
    campaign_id = await new_campaign(
        client, auth, max_attempts=rules.max_attempts, retry_on=sorted(rules.retry_on)
    )
    numbers = rng.sample(range(100, 999), chooser.integer(2, 6))
    people = {n: (f"Person {uuid.uuid4().hex[:10]}", f"crm-{uuid.uuid4().hex[:10]}") for n in numbers}
    rows = [
        {"phone": rng.choice(written_forms(n)[1:]), "name": name, "metadata": {"crm": secret, "tier": 2}}
        for n, (name, secret) in people.items()
    ]
    added = await client.post(f"/addContacts/{campaign_id}", json={"contacts": rows}, headers=auth)
    assert added.json()["data"]["accepted"] == len(numbers), added.text
    streams = [simulate_contact(chooser, f"s{seed}k{n}", phone_of(n), rules, BASE_MS) for n in numbers]
    prefix = f"{uuid.uuid4().hex[:8]}:"
    for request in batches(chooser, interleave(chooser, streams), 6):
        await record(client, auth, *(e.body(campaign_id, prefix) for e in request))

    before = await figures(client, auth, campaign_id)
    gone, *others = numbers
    contact_id = contact_id_of(app, campaign_id, phone_of(gone))
    assert cells_holding(app, *traces(gone, *people[gone]))  # there before: the scan can find it
    erased = await forget(client, auth, campaign_id, contact_id)
    assert erased["campaign_id"] == campaign_id and erased["contact_id"] == contact_id
    assert cells_holding(app, *traces(gone, *people[gone])) == []
    for n in others:
        assert cells_holding(app, phone_of(n), people[n][0])
    assert await figures(client, auth, campaign_id) == before
    with app.db.read() as conn:
        assert differences(conn, campaign_id) == []

    cells = text_cells(app)
    assert await forget(client, auth, campaign_id, contact_id) == {**erased, "callbacks_deleted": 0}
    assert text_cells(app) == cells and await figures(client, auth, campaign_id) == before


async def test_raw_callbacks_of_the_contact_are_deleted(settings: Settings) -> None:
    """The Twilio callbacks of the contact's calls, and an unmatched one that named no campaign but
    carries its number, are deleted; the other contact's stay; the numbers (raw outcomes included) do
    not move."""
    numbers = [101, 102]
    async with hooked(settings, "twilio", [phone(n) for n in numbers]) as hook:
        http, auth, campaign_id = hook.http, hook.auth, hook.campaign_id
        mine = [
            twilio_call("CA-mine-1", phone(101), "busy", 0, T0),
            twilio_call("CA-mine-2", phone(101), "answered", 1, T0 + 10**6),
        ]
        theirs = twilio_call("CA-theirs", phone(102), "voicemail", 2, T0)
        for call in (*mine, theirs):
            for callback in call.callbacks:
                assert_acknowledged(hook, await deliver(hook, callback))
        stray = {**mine[0].callbacks[0].payload, "CallSid": "CA-stray"}
        url = hook.url(source="dialer")  # no campaign_id: kept unmatched, with no campaign
        signed = {"X-Twilio-Signature": twilio_signature(hook.secret, url, stray)}
        assert (await http.post(url, data=stray, headers=signed)).status_code == 204
        before = await figures(http, auth, campaign_id)

        erased = await forget(http, auth, campaign_id, contact_id_of(hook.app, campaign_id, phone(101)))
        assert erased["callbacks_deleted"] == sum(len(call.callbacks) for call in mine) + 1
        assert cells_holding(hook.app, phone(101)[1:]) == []
        kept = cells_holding(hook.app, phone(102)[1:])
        assert {(table, column) for table, column, _ in kept} >= {("carrier_callbacks", "body")}
        assert await figures(http, auth, campaign_id) == before
        with hook.app.db.read() as conn:
            assert differences(conn, campaign_id) == []


async def test_later_events_find_an_erased_contact_by_id_only(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """A call in progress when its contact is erased still ends by contact_id (the numbers stay whole);
    an event naming the number finds no contact; the number added again is a new contact."""
    number = phone_of(123)
    campaign_id = await new_campaign(client, auth, max_attempts=1)
    await client.post(f"/addContacts/{campaign_id}", json={"contacts": [{"phone": number}]}, headers=auth)
    tag = uuid.uuid4().hex[:8]
    await record(client, auth, started_call(campaign_id, number, f"{tag}-1"))
    contact_id = contact_id_of(app, campaign_id, number)
    await forget(client, auth, campaign_id, contact_id)

    by_phone = await record(
        client, auth, ended_call(campaign_id, number, f"{tag}-1", "busy", event_id=f"{tag}-p")
    )
    assert [(r["status"], r["error"]) for r in by_phone["results"]] == [("rejected", "NOT_FOUND")]
    ended = {**ended_call(campaign_id, number, f"{tag}-1", "busy"), "contact_id": contact_id}
    del ended["phone"]
    assert [r["status"] for r in (await record(client, auth, ended))["results"]] == ["applied"]
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert (stats["calls_failed"], stats["calls_in_progress"], stats["total_contacts"]) == (1, 0, 1)
    again = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": number}]}, headers=auth
    )
    assert again.json()["data"]["accepted"] == 1
    assert (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"][
        "total_contacts"
    ] == 2
    with app.db.read() as conn:
        assert differences(conn, campaign_id) == []


@pytest.mark.parametrize(
    ("contact", "status", "error"),
    [
        ("abc", 400, "VALIDATION_ERROR"),
        ("0", 400, "VALIDATION_ERROR"),
        ("1.5", 400, "VALIDATION_ERROR"),
        ("99999999999999999999", 400, "VALIDATION_ERROR"),
        ("999999", 404, "NOT_FOUND"),
    ],
)
async def test_bad_or_unknown_contact_ids(
    client: httpx.AsyncClient, auth: dict[str, str], contact: str, status: int, error: str
) -> None:
    """A contactId that is not a positive whole number is a 400; one the campaign lacks a 404."""
    campaign_id = await new_campaign(client, auth)
    response = await client.post(f"/forgetContact/{campaign_id}/{contact}", headers=auth)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


async def test_only_a_write_key_of_the_account_may_forget(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """A read key gets 403; another account's write key, or the contact named under another campaign,
    404; nothing is erased."""
    number = phone_of(321)
    campaign_id = await new_campaign(client, auth)
    elsewhere = await new_campaign(client, auth)
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": number, "name": "Ada"}]}, headers=auth
    )
    contact_id = contact_id_of(app, campaign_id, number)
    attempts = [
        ({"x-api-key": create_key(app.db, "acme", "read").plaintext}, campaign_id, 403),
        ({"x-api-key": create_key(app.db, "globex", "write").plaintext}, campaign_id, 404),
        (auth, elsewhere, 404),
    ]
    for headers, campaign, status in attempts:
        response = await client.post(f"/forgetContact/{campaign}/{contact_id}", headers=headers)
        assert response.status_code == status, response.text
    assert cells_holding(app, number, "Ada") != []
