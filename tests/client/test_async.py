"""AsyncClient against a real `callstats serve` process: every method, the same results as Client's."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from callstats_client import AsyncClient, ConnectionFailed, Forbidden, NotFound
from tests.carriers.webhook_kit import twilio_signature
from tests.client.conftest import FAST, Retries, Served
from tests.client.proxy import dropping_proxy
from tests.factories import ended_call, phones


@pytest.fixture
async def aapi(served: Served) -> AsyncIterator[AsyncClient]:
    """An AsyncClient with the write key."""
    async with AsyncClient(served.base_url, served.write_key, retry=FAST) as client:
        yield client


async def test_campaigns_contacts_events_and_stats(aapi: AsyncClient, tmp_path: Path) -> None:
    """The write path and every read of it, through the asyncio client."""
    campaign = await aapi.create_campaign("Async", max_attempts=1, retry_on=[])
    assert (await aapi.get_campaign(campaign.campaign_id)).retry_on == []
    numbers = phones(6, 320)
    added = await aapi.add_contacts(campaign.campaign_id, [{"phone": p} for p in numbers[:3]], batch_size=2)
    assert (added.accepted, added.requests) == (3, 2)
    path = tmp_path / "more.csv"
    path.write_text("phone\n" + "\n".join(numbers[3:]) + "\n" + numbers[0] + "\n", encoding="utf-8")
    from_file = await aapi.add_contacts(campaign.campaign_id, path, batch_size=2)
    assert (from_file.accepted, from_file.duplicate, from_file.requests) == (3, 1, 2)
    assert [(d.row, d.earlier_row) for d in from_file.duplicates] == [(4, None)]
    events = [
        ended_call(campaign.campaign_id, p, f"call-{uuid.uuid4().hex}", "answered" if i % 2 else "busy", 7)
        for i, p in enumerate(numbers)
    ]
    recorded = await aapi.record_events(events, batch_size=4)
    assert (recorded.applied, recorded.requests, recorded.results[-1].index) == (6, 2, 5)
    stats = await aapi.get_campaign_stats(campaign.campaign_id, include=["durations"])
    assert (stats.calls_completed, stats.calls_failed, stats.total_call_duration) == (3, 3, 21)
    assert stats.durations is not None and stats.durations.answered_calls == 3
    series = await aapi.get_campaign_timeseries(
        campaign.campaign_id, interval="hour", from_="2024-01-16T09:00:00Z", to="2024-01-16T12:00:00Z"
    )
    assert series.totals.busy == 3 and series.buckets[0].figures.answered == 3
    summaries = await aapi.get_campaign_summaries([campaign.campaign_id, str(uuid.uuid4())])
    assert [(s.campaign_id, s.success_rate) for s in summaries] == [(campaign.campaign_id, 50.0)]
    walked = [c async for c in aapi.iter_contacts(campaign.campaign_id, page_size=4)]
    assert [c.phone for c in walked] == numbers
    page = await aapi.get_contacts(campaign.campaign_id, last_outcome="busy", limit=2)
    assert len(page.items) == 2 and page.next_cursor is not None
    detail = await aapi.get_contact(campaign.campaign_id, walked[1].contact_id)
    assert [c.outcome for c in detail.calls] == ["answered"]
    calls = [c async for c in aapi.iter_calls(campaign.campaign_id, page_size=4)]
    assert len(calls) == 6 and (await aapi.get_calls(campaign.campaign_id, outcome="busy")).limit == 100
    buffer = io.BytesIO()
    assert (await aapi.export_calls(campaign.campaign_id, buffer)).bytes_written == len(buffer.getvalue())
    target = tmp_path / "contacts.ndjson"
    await aapi.export_contacts(campaign.campaign_id, target, format="ndjson")
    assert len(target.read_bytes().splitlines()) == 6
    async for campaign_found in aapi.iter_campaigns(page_size=1):
        assert campaign_found.campaign_id == campaign.campaign_id  # newest first
        break
    assert (await aapi.get_campaigns(limit=1, status="completed")).items[
        0
    ].campaign_id == campaign.campaign_id
    forgotten = await aapi.forget_contact(campaign.campaign_id, walked[0].contact_id)
    assert forgotten.contact_id == walked[0].contact_id
    stream = aapi.stream_stats(campaign.campaign_id)
    live = await anext(stream)
    await stream.aclose()
    assert (live.calls_completed, live.completed_at is not None) == (3, True)
    assert (await aapi.delete_campaign(campaign.campaign_id)).deleted
    with pytest.raises(NotFound):
        await aapi.get_campaign_stats(campaign.campaign_id)


async def test_carriers_and_the_server_routes(aapi: AsyncClient, served: Served) -> None:
    """Connections, an unmatched callback replayed once its contact exists, health, ready, metrics."""
    campaign = await aapi.create_campaign("Async carrier")
    connection = await aapi.create_carrier_connection("twilio", "async-token")
    assert connection.connection_id in {c.connection_id for c in await aapi.get_carrier_connections()}
    phone = phones(1, 321)[0]
    url = f"{connection.webhook_url}?campaign_id={campaign.campaign_id}"
    params = {"CallSid": f"CA{uuid.uuid4().hex}", "To": phone, "CallStatus": "no-answer"}
    async with httpx.AsyncClient() as platform:
        signature = twilio_signature("async-token", url, params)
        answer = await platform.post(url, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 204, answer.text
    unmatched = [u async for u in aapi.iter_unmatched_callbacks(connection_id=connection.connection_id)]
    assert len(unmatched) == 1
    assert (await aapi.get_unmatched_callbacks(limit=1)).limit == 1
    await aapi.add_contacts(campaign.campaign_id, [{"phone": phone}])
    assert (await aapi.replay_callback(unmatched[0].callback_id)).verdict == "applied"
    assert (await aapi.get_campaign_stats(campaign.campaign_id)).call_status_breakdown.no_answer == 1
    assert (await aapi.delete_carrier_connection(connection.connection_id)).deleted
    assert (await aapi.health()).status == "ok" and await aapi.ready()
    assert "callstats_events_total" in await aapi.metrics()
    async with AsyncClient(served.base_url, served.read_key) as reader:
        with pytest.raises(Forbidden):
            await reader.create_campaign("No")


async def test_a_lost_acknowledgement_is_resent_and_a_lost_create_is_not(served: Served) -> None:
    """The retry rules are Client's: recordCallEvents resent after its answer was lost (duplicates,
    counted once); createCampaign's lost answer is ConnectionFailed, not sent again."""
    async with AsyncClient(served.base_url, served.write_key) as api:
        campaign = await api.create_campaign("Async dropped", max_attempts=1)
        numbers = phones(3, 322)
        await api.add_contacts(campaign.campaign_id, [{"phone": p} for p in numbers])
    events = [ended_call(campaign.campaign_id, p, f"call-{uuid.uuid4().hex}", "answered", 3) for p in numbers]
    retries = Retries()
    with dropping_proxy(served.server.port, b"POST /recordCallEvents", drop=1) as proxy:
        async with AsyncClient(proxy.base_url, served.write_key, retry=FAST, on_retry=retries) as api:
            recorded = await api.record_events(events)
            assert [r.status for r in recorded.results] == ["duplicate"] * 3
            assert (await api.get_campaign_stats(campaign.campaign_id)).total_call_duration == 9
    assert proxy.dropped == 1 and [n.status for n in retries.notices] == [None]
    with dropping_proxy(served.server.port, b"POST /createCampaign", drop=1) as proxy:
        async with AsyncClient(proxy.base_url, served.write_key, retry=FAST) as api:
            with pytest.raises(ConnectionFailed):
                await api.create_campaign("Async once")
            assert [c.name async for c in api.iter_campaigns()].count("Async once") == 1
