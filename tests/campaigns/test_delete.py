"""deleteCampaign: no row of the campaign left in any table, every route 404 for it afterwards, a
repeat 404, other campaigns untouched, live streams of it ended."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import select

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp
from callstats.config import Settings
from callstats.db.schema import campaigns
from callstats.stats.reconcile import differences
from callstats.stream.hub import Mailbox
from tests.apps import http_client
from tests.campaigns.stored import campaign_rows, cells_holding
from tests.carriers.webhook_kit import T0, assert_acknowledged, deliver, hooked, phone, twilio_call
from tests.conftest import new_campaign
from tests.factories import answered_call, ended_call, record, setup_campaign, started_call
from tests.oracle import (
    BASE_MS,
    RETRYABLE,
    Rules,
    SeededChoices,
    batches,
    interleave,
    phone_of,
    simulate_contact,
)

PHONES = [phone(n) for n in range(1, 5)]
FILLED = {
    "contacts",
    "calls",
    "call_events",
    "carrier_callbacks",
    "campaign_counters",
    "campaign_histograms",
    "campaign_raw_outcomes",
    "campaign_timeseries",
    "campaigns",
}


async def fill(http: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> None:
    """Calls of every kind through recordCallEvents on the campaign's first three contacts."""
    await record(http, auth, *answered_call(campaign_id, PHONES[0], 42))
    await record(http, auth, started_call(campaign_id, PHONES[1], f"{campaign_id}-live"))
    raw = ended_call(campaign_id, PHONES[2], f"{campaign_id}-busy", "busy")
    await record(http, auth, {**raw, "raw_outcome": "twilio:busy"})


async def test_nothing_of_a_deleted_campaign_is_left(settings: Settings) -> None:
    """Its rows are gone from every table with a campaign_id (and its id from every text cell); the
    other campaign's rows and numbers are as they were; every route answers 404 for it."""
    async with hooked(settings, "twilio", PHONES) as hook:
        http, auth, doomed = hook.http, hook.auth, hook.campaign_id
        kept = await new_campaign(http, auth)
        await http.post(
            f"/addContacts/{kept}", json={"contacts": [{"phone": p} for p in PHONES]}, headers=auth
        )
        for campaign_id in (doomed, kept):
            await fill(http, auth, campaign_id)
        for callback in twilio_call("CA-doomed-4", PHONES[3], "no_answer", 0, T0).callbacks:
            assert_acknowledged(hook, await deliver(hook, callback))
        cached = await http.get(f"/getCampaignStats/{doomed}", headers=auth)  # the readers now hold it
        assert cached.status_code == 200 and cached.json()["data"]["total_contacts"] == len(PHONES)
        before = campaign_rows(hook.app, doomed)
        assert {name for name, n in before.items() if n} == FILLED  # every kind of row is there to delete
        kept_rows = campaign_rows(hook.app, kept)
        kept_stats = (
            await http.get(f"/getCampaignStats/{kept}?include=attempts,durations", headers=auth)
        ).content

        read_only = {"x-api-key": create_key(hook.app.db, "acme", "read").plaintext}
        refused = await http.post(f"/deleteCampaign/{doomed}", headers=read_only)
        assert refused.status_code == 403 and campaign_rows(hook.app, doomed) == before

        deleted = await http.post(f"/deleteCampaign/{doomed.upper()}", headers=auth)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"success": True, "data": {"campaign_id": doomed, "deleted": True}}
        assert campaign_rows(hook.app, doomed) == dict.fromkeys(before, 0)
        assert cells_holding(hook.app, doomed) == []
        assert campaign_rows(hook.app, kept) == kept_rows
        after = await http.get(f"/getCampaignStats/{kept}?include=attempts,durations", headers=auth)
        assert after.content == kept_stats

        await assert_gone_everywhere(http, auth, doomed)
        for callback in twilio_call("CA-doomed-5", PHONES[3], "busy", 1, T0).callbacks:
            assert_acknowledged(hook, await deliver(hook, callback))  # kept as unmatched: unknown campaign
        assert {name for name, n in campaign_rows(hook.app, doomed).items() if n} == {"carrier_callbacks"}


async def assert_gone_everywhere(http: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> None:
    """Every route naming the campaign answers 404 NOT_FOUND; lists leave it out; events for it are
    rejected as naming no campaign."""
    routes = [
        ("GET", f"/getCampaign/{campaign_id}"),
        ("GET", f"/getCampaignStats/{campaign_id}"),
        ("GET", f"/getCampaignStats/{campaign_id}?include=attempts,durations,raw_outcomes"),
        ("GET", f"/getCampaignTimeseries/{campaign_id}"),
        ("GET", f"/streamCampaignStats/{campaign_id}"),
        ("POST", f"/addContacts/{campaign_id}"),
        ("POST", f"/deleteCampaign/{campaign_id}"),
        ("POST", f"/forgetContact/{campaign_id}/1"),
    ]
    for method, path in routes:
        body = {"contacts": [{"phone": PHONES[0]}]} if "addContacts" in path else None
        response = await http.request(method, path, headers=auth, json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["success"] is False and response.json()["error"] == "NOT_FOUND", path
    listed = await http.get("/getCampaigns", params={"limit": 200}, headers=auth)
    assert campaign_id not in {c["campaign_id"] for c in listed.json()["data"]}
    summaries = await http.get("/getCampaignSummaries", params={"campaignIds": campaign_id}, headers=auth)
    assert summaries.json()["data"] == []
    result = await record(http, auth, started_call(campaign_id, PHONES[0], f"{campaign_id}-after"))
    assert [(r["status"], r["error"]) for r in result["results"]] == [("rejected", "NOT_FOUND")]


async def test_another_account_cannot_delete_it(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str], app: CallstatsApp
) -> None:
    """Another account's write key gets 404 and deletes nothing."""
    campaign_id = await new_campaign(client, auth)
    await client.post(f"/addContacts/{campaign_id}", json={"contacts": [{"phone": PHONES[0]}]}, headers=auth)
    before = campaign_rows(app, campaign_id)
    other = {"x-api-key": make_key("globex")}
    response = await client.post(f"/deleteCampaign/{campaign_id}", headers=other)
    assert response.status_code == 404 and response.json()["error"] == "NOT_FOUND"
    assert campaign_rows(app, campaign_id) == before
    assert (await client.get(f"/getCampaign/{campaign_id}", headers=auth)).status_code == 200


async def test_live_streams_of_a_deleted_campaign_end(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """A stream open on the campaign gets its snapshot, then ends once the campaign is deleted (the
    watcher reads it gone on the change feed's signal) and nothing of it is remembered."""
    campaign_id = await new_campaign(client, auth)
    hub = app.api.state.streams
    account_id = _account_of(app, campaign_id)
    async with hub.listening(account_id, campaign_id) as mailbox:
        first = await mailbox.next(5)
        assert first is not None and campaign_id.encode() in first.body
        assert (await client.post(f"/deleteCampaign/{campaign_id}", headers=auth)).status_code == 200
        ended = await asyncio.wait_for(_closed(mailbox), 5)
        assert ended
    assert hub.remembered((account_id, campaign_id)) is None


async def _closed(mailbox: Mailbox) -> bool:
    """True once the mailbox is closed (its stream ends)."""
    while not mailbox.closed:
        await mailbox.next(1)
    return True


def _account_of(app: CallstatsApp, campaign_id: str) -> str:
    with app.db.read() as conn:
        account_id: str = conn.execute(
            select(campaigns.c.account_id).where(campaigns.c.id == campaign_id)
        ).scalar_one()
    return account_id


async def test_deleting_while_events_and_contacts_arrive_leaves_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """Clients keep posting events and contacts while the campaign is deleted: each request is answered
    (events before the delete applied, after it rejected NOT_FOUND; contacts added or 404), and once
    all are done no row of the campaign is left in any table; a campaign written beside it agrees with
    reconcile."""
    choices = SeededChoices(12)
    rules = Rules(3, frozenset(RETRYABLE))
    doomed, phones, _ = await setup_campaign(client, auth, rules, 48)
    kept, kept_phones, _ = await setup_campaign(client, auth, rules, 8)
    prefix = f"{uuid.uuid4().hex[:8]}:"

    # The delete is sent once a first batch of events was answered, and each writer of the doomed
    # campaign holds its last batch until the delete was answered: events land on both sides of it
    # however the machine schedules the tasks.
    first_answered, delete_answered = asyncio.Event(), asyncio.Event()

    async def post_events(campaign_id: str, numbers: list[str], tag: str) -> list[str]:
        streams = [simulate_contact(choices, f"{tag}{n}", p, rules, BASE_MS) for n, p in enumerate(numbers)]
        seen: list[str] = []
        requests = list(batches(choices, interleave(choices, streams), 8))
        async with http_client(app) as http:
            for number, request in enumerate(requests):
                if campaign_id == doomed and number == len(requests) - 1:
                    await delete_answered.wait()
                body = {"events": [e.body(campaign_id, prefix) for e in request]}
                response = await http.post("/recordCallEvents", json=body, headers=auth)
                assert response.status_code == 200, response.text
                seen += [r["error"] or r["status"] for r in response.json()["data"]["results"]]
                first_answered.set()
        return seen

    async def post_contacts() -> list[int]:
        codes = []
        async with http_client(app) as http:
            for n in range(12):
                body = {"contacts": [{"phone": phone_of(500 + n)}]}
                codes.append((await http.post(f"/addContacts/{doomed}", json=body, headers=auth)).status_code)
        return codes

    async def delete_soon() -> int:
        await first_answered.wait()
        async with http_client(app) as http:
            status = (await http.post(f"/deleteCampaign/{doomed}", headers=auth)).status_code
        delete_answered.set()
        return status

    writers = [asyncio.create_task(post_events(doomed, phones[i::4], f"d{i}-")) for i in range(4)]
    beside = asyncio.create_task(post_events(kept, kept_phones, "k-"))
    adding = asyncio.create_task(post_contacts())
    deleted = await delete_soon()
    doomed_results, kept_results, contact_codes = await asyncio.gather(*writers), await beside, await adding
    assert deleted == 200
    assert set(contact_codes) <= {200, 404} and set(r for rs in doomed_results for r in rs) <= {
        "applied",
        "duplicate",
        "CONFLICT",
        "NOT_FOUND",
    }
    assert any("NOT_FOUND" in rs for rs in doomed_results), "the delete came after the last event"
    assert any("applied" in rs for rs in doomed_results), "the delete came before the first event"
    assert campaign_rows(app, doomed) == dict.fromkeys(campaign_rows(app, kept), 0)
    assert "NOT_FOUND" not in kept_results
    with app.db.read() as conn:
        assert differences(conn, kept) == []
