"""Every method of callstats_client.Client against a real `callstats serve` process on SQLite."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import httpx
import pytest

from callstats_client import AddContactsProgress, Client, InvalidCsv, NotFound
from tests.carriers.webhook_kit import twilio_signature
from tests.client.conftest import Served
from tests.factories import ended_call, phones


def test_campaigns_are_created_read_listed_and_deleted(api: Client) -> None:
    """createCampaign's options come back; getCampaign, getCampaigns (pages and the iterator),
    getCampaignSummaries (over 200 ids, unknown ones left out) and deleteCampaign."""
    made = [
        api.create_campaign(
            f"List {n}", max_attempts=2, retry_on=["busy"], default_region="gb", stall_after_minutes=9
        )
        for n in range(5)
    ]
    first = made[0]
    assert (first.name, first.max_attempts, first.retry_on) == ("List 0", 2, ["busy"])
    assert (first.default_region, first.stall_after_minutes, first.status) == ("GB", 9, "not_started")
    assert api.get_campaign(first.campaign_id) == first
    page = api.get_campaigns(limit=2)
    assert len(page.items) == 2 and page.next_cursor is not None and page.limit == 2
    second = api.get_campaigns(limit=2, cursor=page.next_cursor)
    assert {c.campaign_id for c in page.items}.isdisjoint(c.campaign_id for c in second.items)
    walked = [c.campaign_id for c in api.iter_campaigns(status="not_started", page_size=2)]
    assert {c.campaign_id for c in made} <= set(walked) and len(walked) == len(set(walked))
    strangers = [str(uuid.uuid4()) for _ in range(250)]
    summaries = api.get_campaign_summaries(
        [*strangers[:150], made[1].campaign_id, *strangers[150:], first.campaign_id]
    )
    assert [s.campaign_id for s in summaries] == [made[1].campaign_id, first.campaign_id]
    assert summaries[0].total_contacts == 0 and summaries[0].success_rate == 0
    deleted = api.delete_campaign(first.campaign_id)
    assert deleted.deleted and deleted.campaign_id == first.campaign_id
    with pytest.raises(NotFound, match="not found"):
        api.get_campaign(first.campaign_id)


def test_add_contacts_splits_rows_and_numbers_them_across_requests(api: Client) -> None:
    """Rows sent 4 per request: one result, rows numbered over every request, a duplicate naming the
    earlier row of another request, and a progress report after each request."""
    campaign = api.create_campaign("Rows")
    rows: list[dict[str, object]] = [{"phone": p, "name": f"N{i}"} for i, p in enumerate(phones(9, 301))]
    rows.insert(5, {"phone": "12"})  # row 6: too short
    rows.append({"phone": rows[0]["phone"], "metadata": {"again": True}})  # row 11 repeats row 1
    seen: list[AddContactsProgress] = []
    result = api.add_contacts(campaign.campaign_id, rows, batch_size=4, on_progress=seen.append)
    assert (result.received, result.accepted, result.invalid, result.duplicate, result.requests) == (
        11,
        9,
        1,
        1,
        3,
    )
    assert [(e.row, e.phone) for e in result.errors] == [(6, "12")]
    assert [(d.row, d.phone, d.earlier_row) for d in result.duplicates] == [(11, rows[0]["phone"], None)]
    assert [(p.rows_sent, p.rows_total, p.result.accepted) for p in seen] == [
        (4, 11, 4),
        (8, 11, 7),
        (11, 11, 9),
    ]
    assert api.get_campaign(campaign.campaign_id).total_contacts == 9


def test_add_contacts_reads_a_csv_file_in_batches(api: Client, tmp_path: Path) -> None:
    """A `;` file with a `sep=` line, a quoted cell holding the other delimiters and a blank line:
    every row added with its metadata, 2 rows per request."""
    campaign = api.create_campaign("CSV")
    path = tmp_path / "contacts.csv"
    numbers = phones(5, 302)
    lines = ["sep=;", "Phone Number;Name;CRM"] + [f'{p};"Smith, J; {i}";C{i}' for i, p in enumerate(numbers)]
    lines.insert(4, "")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    seen: list[AddContactsProgress] = []
    result = api.add_contacts(campaign.campaign_id, str(path), batch_size=2, on_progress=seen.append)
    assert (result.received, result.accepted, result.requests) == (5, 5, 3)
    assert [p.rows_sent for p in seen] == [2, 4, 5] and seen[0].rows_total == 5
    contacts = {c.phone: c for c in api.iter_contacts(campaign.campaign_id, page_size=2)}
    assert set(contacts) == set(numbers)
    assert (contacts[numbers[3]].name, contacts[numbers[3]].metadata) == ("Smith, J; 3", {"crm": "C3"})


def test_add_contacts_csv_sends_one_body_as_it_is(api: Client) -> None:
    """One windows-1252 CSV body, its region and phone column: rows numbered as the body holds them."""
    campaign = api.create_campaign("One body", default_region="US")
    body = "Work Line,name\n020 7946 0958,Zoë\n12,Bad\n".encode("windows-1252")
    added = api.add_contacts_csv(
        campaign.campaign_id, body, charset="windows-1252", region="GB", phone_column="Work Line"
    )
    assert (added.received, added.accepted, added.requests) == (2, 1, 1)
    assert [(e.row, e.phone) for e in added.errors] == [(2, "12")]
    contact = api.get_contacts(campaign.campaign_id).items[0]
    assert (contact.phone, contact.name) == ("+442079460958", "Zoë")


def test_a_malformed_csv_sends_nothing(api: Client, tmp_path: Path) -> None:
    """A quote never closed is refused before any request, naming the file."""
    campaign = api.create_campaign("Broken CSV")
    path = tmp_path / "broken.csv"
    path.write_text('phone,name\n+14155550101,Ada\n+14155550102,"Bob\n', encoding="utf-8")
    with pytest.raises(InvalidCsv, match=r"broken\.csv.*nothing was sent"):
        api.add_contacts(campaign.campaign_id, path)
    assert api.get_campaign(campaign.campaign_id).total_contacts == 0


def test_events_stats_drill_down_and_exports(api: Client, tmp_path: Path) -> None:
    """recordCallEvents by batches (a rejected event is a result), then getCampaignStats with every
    section, the time series, getContacts, getContact, getCalls (pages and iterators) and both exports."""
    campaign = api.create_campaign("Events", max_attempts=1)
    numbers = phones(5, 303)
    api.add_contacts(campaign.campaign_id, [{"phone": p} for p in numbers])
    outcomes = ["answered", "answered", "busy", "no_answer", "answered"]
    events = [
        ended_call(campaign.campaign_id, p, f"call-{uuid.uuid4().hex}", o, 60 * (i + 1))
        for i, (p, o) in enumerate(zip(numbers, outcomes, strict=True))
    ]
    events.append(ended_call(campaign.campaign_id, phones(1, 399)[0], f"call-{uuid.uuid4().hex}", "busy"))
    events[4]["raw_outcome"] = "twilio:completed"
    recorded = api.record_events(events, batch_size=2)
    assert (recorded.received, recorded.applied, recorded.rejected, recorded.requests) == (6, 5, 1, 3)
    assert [r.index for r in recorded.results] == list(range(6))
    assert (recorded.results[5].status, recorded.results[5].error) == ("rejected", "NOT_FOUND")

    stats = api.get_campaign_stats(campaign.campaign_id, include=["attempts", "durations", "raw_outcomes"])
    assert (stats.calls_completed, stats.calls_failed, stats.total_call_duration) == (3, 2, 60 + 120 + 300)
    assert (stats.call_status_breakdown.busy, stats.raw_outcomes) == (1, {"twilio:completed": 1})
    assert stats.attempts is not None and stats.attempts.total == 5
    assert stats.durations is not None and stats.durations.answered_calls == 3
    assert api.get_campaign_stats(campaign.campaign_id).attempts is None
    series = api.get_campaign_timeseries(
        campaign.campaign_id, interval="day", from_="2024-01-16T00:00:00Z", to="2024-01-17T00:00:00Z"
    )
    assert (series.interval, series.from_, len(series.buckets)) == ("day", "2024-01-16T00:00:00+00:00", 1)
    assert (series.totals.answered, series.buckets[0].figures.busy, series.totals.contacts_failed) == (
        3,
        1,
        2,
    )

    failed = api.get_contacts(campaign.campaign_id, state="failed")
    assert sorted(c.last_outcome or "" for c in failed.items) == ["busy", "no_answer"]
    assert failed.next_cursor is None
    one = api.get_contacts(campaign.campaign_id, phone=numbers[0]).items[0]
    detail = api.get_contact(campaign.campaign_id, one.contact_id)
    assert (detail.phone, detail.state, [c.duration_seconds for c in detail.calls]) == (
        numbers[0],
        "completed",
        [60],
    )
    calls = api.get_calls(campaign.campaign_id, limit=2)
    assert len(calls.items) == 2 and calls.next_cursor is not None
    assert sorted(c.outcome or "" for c in api.iter_calls(campaign.campaign_id, page_size=2)) == sorted(
        outcomes
    )
    assert [c.outcome for c in api.iter_calls(campaign.campaign_id, outcome="busy")] == ["busy"]

    target = tmp_path / "contacts.csv"
    exported = api.export_contacts(campaign.campaign_id, target, state="completed")
    assert exported.file_name == f"campaign-{campaign.campaign_id}-contacts.csv"
    assert exported.bytes_written == target.stat().st_size and len(target.read_bytes().splitlines()) == 1 + 3
    buffer = io.BytesIO()
    shipped = api.export_calls(campaign.campaign_id, buffer, format="ndjson", outcome="answered")
    rows = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert shipped.bytes_written == len(buffer.getvalue()) and len(rows) == 3
    assert {r["outcome"] for r in rows} == {"answered"}


def test_forget_contact_blanks_the_person_and_keeps_the_numbers(api: Client) -> None:
    """forgetContact erases phone and name, keeps the stats; repeating it keeps the first time."""
    campaign = api.create_campaign("Forget")
    phone = phones(1, 304)[0]
    api.add_contacts(campaign.campaign_id, [{"phone": phone, "name": "Ada"}])
    api.record_events([ended_call(campaign.campaign_id, phone, f"call-{uuid.uuid4().hex}", "answered", 30)])
    contact_id = api.get_contacts(campaign.campaign_id).items[0].contact_id
    forgotten = api.forget_contact(campaign.campaign_id, contact_id)
    assert forgotten.contact_id == contact_id and forgotten.callbacks_deleted == 0
    assert api.forget_contact(campaign.campaign_id, contact_id).erased_at == forgotten.erased_at
    erased = api.get_contact(campaign.campaign_id, contact_id)
    assert (erased.phone, erased.name, erased.metadata, erased.erased_at) == (
        None,
        None,
        {},
        forgotten.erased_at,
    )
    assert api.get_campaign_stats(campaign.campaign_id).calls_completed == 1


def test_carrier_connections_and_a_replayed_callback(api: Client) -> None:
    """createCarrierConnection, a signed Twilio callback for a contact not added yet (unmatched, listed
    by getUnmatchedCallbacks), replayed once the contact is there (applied), and the connection deleted."""
    campaign = api.create_campaign("Carrier")
    connection = api.create_carrier_connection(
        "twilio", "twilio-token-1", name="Main", outcome_map={"canceled": "failed"}
    )
    assert (connection.provider, connection.name, connection.outcome_map) == (
        "twilio",
        "Main",
        {"canceled": "failed"},
    )
    assert connection.connection_id in {c.connection_id for c in api.get_carrier_connections()}
    phone = phones(1, 305)[0]
    url = f"{connection.webhook_url}?campaign_id={campaign.campaign_id}"
    params = {
        "CallSid": f"CA{uuid.uuid4().hex}",
        "To": phone,
        "CallStatus": "busy",
        "Direction": "outbound-api",
    }
    answer = httpx.post(
        url, data=params, headers={"X-Twilio-Signature": twilio_signature("twilio-token-1", url, params)}
    )
    assert answer.status_code == 204, answer.text
    unmatched = api.get_unmatched_callbacks(connection_id=connection.connection_id)
    assert len(unmatched.items) == 1 and unmatched.items[0].campaign_id == campaign.campaign_id
    assert [u.callback_id for u in api.iter_unmatched_callbacks(page_size=1)].count(
        unmatched.items[0].callback_id
    ) == 1
    api.add_contacts(campaign.campaign_id, [{"phone": phone}])
    verdict = api.replay_callback(unmatched.items[0].callback_id)
    assert (verdict.callback_id, verdict.verdict) == (unmatched.items[0].callback_id, "applied")
    assert api.get_campaign_stats(campaign.campaign_id).call_status_breakdown.busy == 1
    assert api.delete_carrier_connection(connection.connection_id).deleted
    assert connection.connection_id not in {c.connection_id for c in api.get_carrier_connections()}


def test_health_ready_and_metrics(served: Served) -> None:
    """/health's version, /ready, and the Prometheus text (a loopback client needs no token)."""
    with Client(served.base_url, served.read_key) as api:
        health = api.health()
        assert health.status == "ok" and health.version
        assert api.ready() is True
        assert "callstats_http_requests_total" in api.metrics()
