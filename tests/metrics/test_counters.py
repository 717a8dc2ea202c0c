"""/metrics in process, on SQLite and PostgreSQL: each counter moves by exactly the requests made.

Every figure expected is counted here from what the test sent (and, for events, checked against the
answers recordCallEvents gave); the samples are read with prometheus-client's own parser.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import httpx

from callstats.app import CallstatsApp
from callstats.config import Settings
from tests.apps import serving
from tests.carriers.webhook_kit import hooked, twilio_signature
from tests.conftest import new_campaign
from tests.factories import add, ended_call, record, started_call
from tests.metrics.scrape import labels, moved, scrape, value

STATS = "/getCampaignStats/{campaignId}"


async def test_requests_are_counted_by_route_template_method_and_status(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/health")).status_code == 200
    unknown = [str(uuid.uuid4()) for _ in range(2)]  # two campaigns: two raw paths, one template
    for campaign_id in unknown:
        assert (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).status_code == 404
    for _ in range(4):
        assert (await client.get(f"/no/such/route/{uuid.uuid4()}")).status_code == 404
    assert (await client.post("/createCampaign", json={"name": "x"})).status_code == 401
    assert (await client.request("BREW", "/health")).status_code == 405
    after = await scrape(client)

    assert moved(before, after, "callstats_http_requests_total") == {
        labels(route="/metrics", method="GET", status="200"): 1,  # the first scrape, counted once answered
        labels(route="/health", method="GET", status="200"): 3,
        labels(route=STATS, method="GET", status="404"): 2,
        labels(route="unmatched", method="GET", status="404"): 4,
        labels(route="/createCampaign", method="POST", status="401"): 1,
        labels(route="/health", method="OTHER", status="405"): 1,
    }
    timed = moved(before, after, "callstats_http_request_duration_seconds_count")
    assert timed == {
        labels(route="/metrics", method="GET"): 1,
        labels(route="/health", method="GET"): 3,
        labels(route=STATS, method="GET"): 2,
        labels(route="unmatched", method="GET"): 4,
        labels(route="/createCampaign", method="POST"): 1,
        labels(route="/health", method="OTHER"): 1,
    }
    health = {"route": "/health", "method": "GET"}
    buckets = moved(before, after, "callstats_http_request_duration_seconds_bucket")
    assert buckets[labels(**health, le="+Inf")] == 3
    assert value(after, "callstats_http_request_duration_seconds_sum", **health) > value(
        before, "callstats_http_request_duration_seconds_sum", **health
    )


async def test_events_are_counted_by_result_once_committed(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    campaign_id = await new_campaign(client, auth)
    phones = [f"+1415555{n:04d}" for n in range(3)]
    await add(client, auth, campaign_id, json={"contacts": [{"phone": p} for p in phones]})
    starts = [started_call(campaign_id, phone, f"call-{n}") for n, phone in enumerate(phones)]
    stranger = started_call(campaign_id, "+14155559999", "call-x")  # no such contact: rejected
    elsewhere = started_call(str(uuid.uuid4()), phones[0], "call-y")  # no such campaign: rejected
    ends = [ended_call(campaign_id, phones[0], "call-0", "answered", 30)]
    before = await scrape(client)
    first = await record(client, auth, *starts)
    second = await record(client, auth, *starts, stranger, elsewhere, *ends)  # starts again: duplicates
    after = await scrape(client)

    assert (first["applied"], first["duplicate"], first["rejected"]) == (3, 0, 0)
    assert (second["applied"], second["duplicate"], second["rejected"]) == (1, 3, 2)
    assert moved(before, after, "callstats_events_total") == {
        labels(result="applied"): 4,
        labels(result="duplicate"): 3,
        labels(result="rejected"): 2,
    }


async def test_rate_limited_reads_are_counted(settings: Settings) -> None:
    async with serving(settings.model_copy(update={"stats_rate_limit": "3/minute"})) as (app, http):
        auth = {"x-api-key": _key(app)}
        campaign_id = await new_campaign(http, auth)
        before = await scrape(http)
        statuses = [
            (await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)).status_code for _ in range(5)
        ]
        after = await scrape(http)
    assert statuses == [200, 200, 200, 429, 429]
    assert (
        value(after, "callstats_rate_limited_requests_total")
        - value(before, "callstats_rate_limited_requests_total")
        == 2
    )
    assert (
        moved(before, after, "callstats_http_requests_total")[labels(route=STATS, method="GET", status="429")]
        == 2
    )


def _key(app: CallstatsApp) -> str:
    from callstats.accounts.service import create_key

    return create_key(app.db, "acme", "write").plaintext


PHONES = ["+14155550101", "+14155550102"]


def _status(sid: str, to: str, status: str | None, **extra: str) -> dict[str, str]:
    form = {"CallSid": sid, "To": to, "Timestamp": "Tue, 16 Jan 2024 09:00:00 +0000", **extra}
    return {**form, "CallStatus": status} if status else form


async def test_twilio_callbacks_are_counted_by_verdict(settings: Settings) -> None:
    """Real Twilio-signed callbacks (the SDK's RequestValidator): applied, a redelivery, unmatched (a
    number in no campaign, an unknown status), ignored (AnsweredBy alone) and refused (a bad signature)."""
    async with hooked(settings, "twilio", PHONES) as hook:
        url = f"http://callstats.test{hook.path}?" + urlencode({"campaign_id": hook.campaign_id})
        sent = {
            "applied": [_status("CA1", PHONES[0], "initiated"), _status("CA2", PHONES[1], "ringing")],
            "duplicate": [_status("CA1", PHONES[0], "initiated")],
            "unmatched": [_status("CA3", "+14155550199", "initiated"), _status("CA4", PHONES[1], "sleeping")],
            "ignored": [_status("CA1", PHONES[0], None, AnsweredBy="human")],
        }
        before = await scrape(hook.http)
        for forms in sent.values():
            for form in forms:
                signature = twilio_signature(hook.secret, url, form)
                answer = await hook.http.post(url, data=form, headers={"X-Twilio-Signature": signature})
                assert answer.status_code == 204, answer.text
        forged = _status("CA5", PHONES[0], "initiated")
        refused = await hook.http.post(
            url, data=forged, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
        )
        assert refused.status_code == 403, refused.text
        after = await scrape(hook.http)

    expected = {labels(provider="twilio", verdict=verdict): len(forms) for verdict, forms in sent.items()}
    assert moved(before, after, "callstats_carrier_callbacks_total") == {
        **expected,
        labels(provider="twilio", verdict="refused"): 1,
    }
    # their events went through the write path: an unknown status and AnsweredBy alone carry none
    assert moved(before, after, "callstats_events_total") == {
        labels(result="applied"): 2,
        labels(result="duplicate"): 1,
        labels(result="rejected"): 1,  # the number in no campaign
    }


async def test_open_streams_and_the_pool_are_gauges(
    app: CallstatsApp, client: httpx.AsyncClient, settings: Settings
) -> None:
    """A stream open on the hub shows while it is open; the pool figures are SQLAlchemy's own."""
    hub = app.api.state.streams
    at_rest = await scrape(client)
    async with hub.listening("acme", str(uuid.uuid4())), hub.listening("acme", str(uuid.uuid4())):
        during = await scrape(client)
    after = await scrape(client)
    assert [value(s, "callstats_open_streams") for s in (at_rest, during, after)] == [0, 2, 0]

    assert value(at_rest, "callstats_db_pool_size_connections") == settings.db_pool_size
    assert value(at_rest, "callstats_db_pool_max_connections") == 2 * settings.db_pool_size
    pool = app.db.engine.pool
    with app.db.read(), app.db.read():
        held = await scrape(client)
        checked_out = pool.checkedout()  # type: ignore[attr-defined]
    assert value(held, "callstats_db_pool_checked_out_connections") == checked_out
    assert checked_out >= 2
    assert value(await scrape(client), "callstats_db_pool_checked_out_connections") == pool.checkedout()  # type: ignore[attr-defined]


async def test_the_feed_records_its_lag_when_it_delivers(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A local publish is timed when it reaches a subscriber (the stream hub's watchers), not otherwise."""
    campaign_id = await new_campaign(client, auth)
    await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550100"}]})
    before = await scrape(client)
    await record(client, auth, started_call(campaign_id, "+14155550100", "call-a"))  # nobody subscribed
    unwatched = await scrape(client)
    subscription = app.api.state.feed.subscribe(campaign_id)
    try:
        await record(client, auth, ended_call(campaign_id, "+14155550100", "call-a", "busy"))
        assert await subscription.wait(timeout=5)
    finally:
        subscription.close()
    watched = await scrape(client)
    count = "callstats_feed_lag_seconds_count"
    assert value(unwatched, count, source="local") == value(before, count, source="local")
    assert value(watched, count, source="local") - value(unwatched, count, source="local") == 1
    assert value(watched, "callstats_feed_lag_seconds_sum", source="local") < 5
