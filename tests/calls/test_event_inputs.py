"""Issue 8, items 5, 7, 8 and 9 on recordCallEvents: what an event may hold, one event at a time.

Each bad value rejects its own event (VALIDATION_ERROR naming the field) while the valid
neighbours of the same request are applied, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp, create_app
from callstats.clock import now_ms
from callstats.config import Settings
from callstats.db.schema import campaign_timeseries
from callstats.stats.response import iso_utc
from tests.conftest import new_campaign
from tests.factories import call_event

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def event(campaign_id: str, n: int, phone: str = "+14155550100", **fields: Any) -> dict[str, Any]:
    """A valid call.started of its own call, with `fields` replaced."""
    return {**call_event(campaign_id, f"ev{n}", f"call{n}", "call.started", phone=phone), **fields}


async def campaign_with(
    client: httpx.AsyncClient, auth: dict[str, str], phones: list[str], **body: Any
) -> str:
    """A campaign holding these contacts (max_attempts 3)."""
    campaign_id = await new_campaign(client, auth, **body)
    response = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    assert response.status_code == 200, response.text
    return campaign_id


async def record(client: httpx.AsyncClient, auth: dict[str, str], events: list[Any]) -> list[dict[str, Any]]:
    """POST the events; each one's result."""
    response = await client.post("/recordCallEvents", json={"events": events}, headers=auth)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["data"]["results"]
    return results


async def assert_alone_rejected(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, bad: dict[str, Any], words: list[str]
) -> None:
    """`bad` between two valid events: it alone is rejected, with a reason holding `words`."""
    good = [event(campaign_id, 1, GOOD[0]), event(campaign_id, 3, GOOD[1])]
    results = await record(client, auth, [good[0], bad, good[1]])
    assert [r["status"] for r in results] == ["applied", "rejected", "applied"], results
    assert results[1]["error"] == "VALIDATION_ERROR"
    for word in words:
        assert word in results[1]["reason"], results[1]["reason"]


GOOD = ["+14155550101", "+14155550102"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contact_id", True),
        ("contact_id", 2.0),
        ("contact_id", "45"),
        ("contact_id", 2**63),
        ("contact_id", -(2**63) - 1),
        ("duration_seconds", True),
        ("duration_seconds", 2.0),
        ("duration_seconds", "45"),
        ("duration_seconds", 2**63),
    ],
)
async def test_integers_are_strict_and_fit_64_bits(
    client: httpx.AsyncClient, auth: dict[str, str], field: str, value: Any
) -> None:
    """Item 8: no boolean, float or string passes as an integer; 2**63 is refused, not an OverflowError."""
    campaign_id = await campaign_with(client, auth, GOOD)
    bad = event(campaign_id, 2, "+14155550103", **{field: value})
    if field == "duration_seconds":
        bad.update(type="call.ended", outcome="answered")
    await assert_alone_rejected(client, auth, campaign_id, bad, [field])


async def test_duration_true_is_not_one_second_of_talk(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The issue's example: `duration_seconds: true` used to count as 1 s of talk time."""
    campaign_id = await campaign_with(client, auth, GOOD)
    bad = event(campaign_id, 1, GOOD[0], type="call.ended", outcome="answered", duration_seconds=True)
    assert (await record(client, auth, [bad]))[0]["status"] == "rejected"
    data = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert (data["total_call_duration"], data["calls_completed"]) == (0, 0)


@pytest.mark.parametrize("field", ["event_id", "call_id", "phone", "campaign_id"])
async def test_a_nul_rejects_only_its_event(
    client: httpx.AsyncClient, auth: dict[str, str], field: str
) -> None:
    """Item 9: NUL in an id or the phone rejects that event, naming the field; neighbours are applied."""
    campaign_id = await campaign_with(client, auth, GOOD)
    bad = event(campaign_id, 2, "+14155550103")
    bad[field] = bad[field][:4] + "\x00" + bad[field][4:]
    await assert_alone_rejected(client, auth, campaign_id, bad, [field, "NUL"])


@pytest.mark.parametrize(
    "occurred_at",
    ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59.999Z", "FUTURE"],
)
async def test_times_outside_the_window_are_refused(
    client: httpx.AsyncClient, auth: dict[str, str], occurred_at: str
) -> None:
    """Item 7: before 2000 or more than a day ahead of the server's clock, the event is refused."""
    if occurred_at == "FUTURE":
        occurred_at = iso_utc(now_ms() + 86_400_000 + 60_000) or ""
    campaign_id = await campaign_with(client, auth, GOOD)
    bad = event(campaign_id, 2, "+14155550103", occurred_at=occurred_at)
    await assert_alone_rejected(client, auth, campaign_id, bad, ["occurred_at", "2000-01-01T00:00:00Z"])
    data = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert data["started_at"] == "2024-01-16T09:00:00Z"
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", headers=auth)
    assert response.status_code == 200, response.text


async def test_the_window_edges_are_accepted(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """The earliest time itself and a time just inside the day ahead are applied; the series answers."""
    campaign_id = await campaign_with(client, auth, GOOD)
    ahead = iso_utc(now_ms() + 86_400_000 - 60_000)
    events = [
        event(campaign_id, 1, GOOD[0], occurred_at="2000-01-01T00:00:00Z"),
        event(campaign_id, 2, GOOD[1], occurred_at=ahead),
    ]
    assert [r["status"] for r in await record(client, auth, events)] == ["applied", "applied"]
    data = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert data["started_at"] == "2000-01-01T00:00:00Z"
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}?interval=day", headers=auth)
    assert response.status_code == 200, response.text  # about 9,800 days: within the 10,000 buckets
    assert response.json()["data"]["totals"]["calls_started"] == 2
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}?interval=hour", headers=auth)
    assert response.status_code == 200, response.text  # the default window: the latest 10,000 hours
    assert response.json()["data"]["totals"]["calls_started"] == 1
    window = {"interval": "hour", "from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"}
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=window, headers=auth)
    assert response.status_code == 200 and response.json()["data"]["totals"]["calls_started"] == 1


async def test_the_window_is_a_setting(database_url: str) -> None:
    """CALLSTATS_EVENTS_EARLIEST and CALLSTATS_EVENTS_MAX_AHEAD_SECONDS move the window."""
    settings = Settings(
        database_url=database_url,
        redis_url=None,
        events_earliest=datetime(2024, 1, 1, tzinfo=UTC),
        events_max_ahead_seconds=0,
    )
    app = create_app(settings)
    try:
        auth = {"x-api-key": create_key(app.db, "acme", "write").plaintext}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            campaign_id = await campaign_with(client, auth, GOOD)
            events = [
                event(campaign_id, 1, GOOD[0], occurred_at="2023-12-31T23:59:59Z"),
                event(campaign_id, 2, GOOD[1], occurred_at=iso_utc(now_ms() + 60_000)),
                event(campaign_id, 3, GOOD[1], occurred_at="2024-01-01T00:00:00Z"),
            ]
            results = await record(client, auth, events)
    finally:
        await app.aclose()
    assert [r["status"] for r in results] == ["rejected", "rejected", "applied"]
    assert "2024-01-01T00:00:00Z" in results[0]["reason"] and "0 s past" in results[1]["reason"]


@pytest.mark.parametrize(
    ("year", "text"),
    [(1, "0001"), (999, "0999"), (2000, "2000"), (9999, "9999")],
)
def test_iso_utc_writes_four_digit_years(year: int, text: str) -> None:
    """Item 7: every time the API writes has a four-digit year (strftime wrote year 1 as '1')."""
    at = ms(datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert iso_utc(at) == f"{text}-12-31T23:59:59Z"
    assert iso_utc(at + 7) == f"{text}-12-31T23:59:59.007Z"
    assert iso_utc(ms(datetime(year, 1, 1, tzinfo=UTC))) == f"{text}-01-01T00:00:00Z"


async def test_a_deeply_nested_body_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Item 9/10: a body nested 100,000 deep is a 400 VALIDATION_ERROR, not a RecursionError."""
    body = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await client.post(
        "/recordCallEvents", content=body, headers={**auth, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"


# -- item 5: an event's phone is read in its campaign's region, extension included ---------------


async def test_an_event_completes_only_the_contact_with_its_extension(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The issue's example: x11 and x12 are two contacts; an event for x12 completes x12 only."""
    campaign_id = await campaign_with(client, auth, ["608-555-0147 x11", "608-555-0147 x12"])
    forms = ["608-555-0147 x12", "+1 608 555 0147 ext. 12", "+16085550147;ext=12"]
    events = [
        event(campaign_id, n, phone, call_id="x12", event_id=f"x12-{n}", **kind)
        for n, (phone, kind) in enumerate(
            zip(
                forms,
                [{}, {"type": "call.answered"}, {"type": "call.ended", "outcome": "answered"}],
                strict=True,
            )
        )
    ]
    assert [r["status"] for r in await record(client, auth, events)] == ["applied"] * 3
    data = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert (data["total_contacts"], data["calls_completed"], data["calls_pending"]) == (2, 1, 1)
    unknown = event(campaign_id, 9, "608-555-0147 x13")
    assert (await record(client, auth, [unknown]))[0]["error"] == "NOT_FOUND"
    bare = event(campaign_id, 10, "608-555-0147")  # no extension: neither x11 nor x12
    assert (await record(client, auth, [bare]))[0]["error"] == "NOT_FOUND"


async def test_an_event_reads_a_national_number_in_its_campaigns_region(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A London number without +44 in a GB campaign on a US server is the GB contact, not +1 207..."""
    gb = await campaign_with(client, auth, ["020 7946 0958"], default_region="GB")
    us = await campaign_with(client, auth, ["(207) 946-0958"], default_region="US")
    results = await record(
        client,
        auth,
        [
            event(gb, 1, "020 7946 0958"),
            event(us, 2, "207 946 0958"),
            event(gb, 3, "+44 20 7946 0958", call_id="call1", type="call.answered"),
            event(gb, 4, "(207) 946-0958"),  # a US-shaped number means nothing in the GB campaign
        ],
    )
    assert [r["status"] for r in results] == ["applied", "applied", "applied", "rejected"], results
    for campaign_id in (gb, us):
        data = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
        assert data["calls_in_progress"] == 1


async def test_stored_times_at_the_ends_of_the_calendar_never_500(
    app: CallstatsApp, auth: dict[str, str]
) -> None:
    """Data stored before times were checked (year 1, year 9999) gives 200 or 400, never 500."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://callstats.test") as client:
        campaign_id = await new_campaign(client, auth)
        first = ms(datetime(1, 1, 1, tzinfo=UTC)) // 60_000
        last = ms(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)) // 60_000
        with app.db.engine.begin() as conn:
            for minute in (first, last):
                conn.execute(
                    insert(campaign_timeseries).values(
                        campaign_id=campaign_id, minute=minute, slot=0, account_id="acme", starts=1
                    )
                )
        for params in [
            {},
            {"interval": "minute"},
            {"interval": "day", "tz": "America/New_York"},
            {"from": "0001-01-01T00:00:00Z"},
            {"to": "9999-12-31T23:59:59Z"},
            {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z", "interval": "day"},
            {"from": "9999-12-31T23:00:00Z", "to": "9999-12-31T23:59:59Z", "interval": "minute"},
            {"from": "0001-01-01T00:00:00Z", "to": "0001-01-01T03:00:00Z", "tz": "Pacific/Kiritimati"},
        ]:
            response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
            assert response.status_code in (200, 400), (params, response.text)
            if response.status_code == 400:
                assert response.json()["error"] == "VALIDATION_ERROR" and response.json()["message"]
