"""GET /getCampaignTimeseries through the public API.

Random event streams spread over three days around a DST change: every bucket
equals an independent recomputation from the raw `calls` and `contacts` rows
(zoneinfo bucketing written here, not the code's), buckets sum to the
campaign's totals, and SQLite and PostgreSQL answer byte-for-byte alike.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import text

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp, create_app
from callstats.config import Settings
from tests.conftest import PG_URL, _truncate, new_campaign
from tests.factories import ended_call, started_call
from tests.oracle import (
    EPOCH,
    OUTCOMES,
    RETRYABLE,
    Event,
    Rules,
    batches,
    chance,
    half_up,
    interleave,
    perturb,
    phone_of,
    simulate_contact,
)

PER_BACKEND = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# (zone, a local day to centre the stream on): four DST changes and two fractional-offset zones
SCENES = [
    ("America/New_York", date(2024, 3, 10)),
    ("America/New_York", date(2024, 11, 3)),
    ("Europe/Berlin", date(2024, 3, 31)),
    ("Europe/Berlin", date(2024, 10, 27)),
    ("Asia/Kolkata", date(2024, 6, 1)),
    ("Asia/Kathmandu", date(2024, 6, 1)),
]
FIELDS = ("calls_started", *OUTCOMES, "answered_talk_seconds", "contacts_completed", "contacts_failed")
DAY_MS = 86_400_000


class RandomChooser:
    """The simulation's choices from a Random that Hypothesis provides (and reports on failure).

    A seeded generator rather than one draw per choice: Hypothesis keeps returning the ends of
    narrow ranges, so most drawn contacts would never be dialed.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return self.rng.randint(low, high)


@dataclass(frozen=True)
class Scenario:
    """A campaign's settings and event stream, and the zone and window to read it in."""

    rules: Rules
    phones: list[str]
    requests: list[list[Event]]
    tz: str
    start: date
    end: date

    def window(self) -> dict[str, str]:
        """from/to as naive local times (read in `tz`)."""
        return {"from": f"{self.start}T00:00:00", "to": f"{self.end}T00:00:00", "tz": self.tz}

    def utc_window(self) -> dict[str, str]:
        """The same window as UTC instants, to read it in UTC."""
        tz = ZoneInfo(self.tz)
        ends = (datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC) for d in (self.start, self.end))
        start, end = (moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in ends)
        return {"from": start, "to": end, "tz": "UTC"}


def ms_of(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (exact)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def draw_scenario(chooser: Any, scene: tuple[str, date]) -> Scenario:
    """Random contacts and perturbed events over the three local days around `scene`'s day."""
    tz_name, day = scene
    tz = ZoneInfo(tz_name)
    midnight = ms_of(datetime(day.year, day.month, day.day, tzinfo=tz))
    rules = Rules(chooser.integer(1, 4), frozenset(o for o in RETRYABLE if chooser.integer(0, 1)))
    phones = [phone_of(n) for n in range(chooser.integer(2, 12))]
    streams = []
    for i, phone in enumerate(phones):
        if chance(chooser, 2):  # near the night of the change (02:00-03:00 local in NY and Berlin)
            at = midnight + chooser.integer(0, 4 * 3_600_000)
        else:
            at = midnight - DAY_MS + chooser.integer(0, 5 * DAY_MS // 2)  # retries add at most ~4 h
        if chance(chooser, 3):  # exactly on a quarter hour: a bucket edge in every zone used here
            at -= at % 900_000
        streams.append(simulate_contact(chooser, f"k{i}", phone, rules, at))
    stream = perturb(chooser, interleave(chooser, streams), phones, chooser.integer(0, 4))
    requests = batches(chooser, stream, 10)
    return Scenario(rules, phones, requests, tz_name, day - timedelta(days=1), day + timedelta(days=2))


async def play(client: httpx.AsyncClient, auth: dict[str, str], scenario: Scenario) -> tuple[str, list[str]]:
    """Create the campaign, add its contacts, deliver its events; (campaign id, statuses)."""
    campaign_id = await new_campaign(
        client, auth, max_attempts=scenario.rules.max_attempts, retry_on=sorted(scenario.rules.retry_on)
    )
    body = {"contacts": [{"phone": p} for p in scenario.phones]}
    added = await client.post(f"/addContacts/{campaign_id}", json=body, headers=auth)
    assert added.status_code == 200, added.text
    prefix = f"{uuid.uuid4().hex[:12]}:"
    statuses: list[str] = []
    for request in scenario.requests:
        events = {"events": [e.body(campaign_id, prefix) for e in request]}
        response = await client.post("/recordCallEvents", json=events, headers=auth)
        assert response.status_code == 200, response.text
        statuses += [r["status"] for r in response.json()["data"]["results"]]
    return campaign_id, statuses


async def timeseries(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, **params: str
) -> dict[str, Any]:
    """The `data` of a successful getCampaignTimeseries."""
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    return body["data"]  # type: ignore[no-any-return]


async def full_stats(client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> dict[str, Any]:
    """getCampaignStats with both extra sections."""
    response = await client.get(
        f"/getCampaignStats/{campaign_id}", params={"include": "attempts,durations"}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


# -- the independent recomputation ---------------------------------------------------------------


def label(epoch_ms: int, interval: str, tz: ZoneInfo) -> str:
    """The local bucket holding an instant: wall-clock start plus UTC offset (which tells DST twins apart)."""
    local = (EPOCH + timedelta(milliseconds=epoch_ms)).astimezone(tz)
    if interval == "day":
        return local.date().isoformat()
    wall = local.replace(tzinfo=None, second=0, microsecond=0)
    if interval == "hour":
        wall = wall.replace(minute=0)
    return f"{wall.isoformat()}{local.utcoffset()}"


def label_of_bucket(start: str, interval: str) -> str:
    """The same label for a bucket the API returned, from its `start` text."""
    moment = datetime.fromisoformat(start)
    if interval == "day":
        return moment.date().isoformat()
    return f"{moment.replace(tzinfo=None).isoformat()}{moment.utcoffset()}"


def raw_buckets(app: CallstatsApp, campaign_id: str, interval: str, tz: ZoneInfo) -> dict[str, Counter[str]]:
    """Per-bucket figures straight from the raw rows: starts, outcomes and talk by the calls' own times."""
    found: dict[str, Counter[str]] = {}
    with app.db.read() as conn:
        calls = conn.execute(
            text(
                "SELECT started_at, status, ended_at, outcome, duration_seconds FROM calls"
                " WHERE campaign_id = :c"
            ),
            {"c": campaign_id},
        ).all()
        failed = conn.execute(
            text("SELECT finalized_at FROM contacts WHERE campaign_id = :c AND state = 'failed'"),
            {"c": campaign_id},
        ).all()
    for started_at, status, ended_at, outcome, duration in calls:
        found.setdefault(label(started_at, interval, tz), Counter())["calls_started"] += 1
        if status == "ended":
            bucket = found.setdefault(label(ended_at, interval, tz), Counter())
            bucket[outcome] += 1
            if outcome == "answered":
                bucket["answered_talk_seconds"] += duration or 0
                bucket["contacts_completed"] += 1
    for (finalized_at,) in failed:
        found.setdefault(label(finalized_at, interval, tz), Counter())["contacts_failed"] += 1
    return found


def expected_figures(counts: Counter[str]) -> dict[str, Any]:
    """A bucket's figures as the API should show them, success rate computed here."""
    figures: dict[str, Any] = {name: counts[name] for name in FIELDS}
    final = counts["contacts_completed"] + counts["contacts_failed"]
    rate = half_up(Fraction(100 * counts["contacts_completed"], final), 2) if final else 0
    figures["success_rate"] = float(rate)
    return figures


def assert_matches_raw(app: CallstatsApp, campaign_id: str, data: dict[str, Any]) -> None:
    """Every bucket equals the raw rows' recomputation, empty buckets are zero, no event falls outside."""
    interval, tz = data["interval"], ZoneInfo(data["tz"])
    expected = raw_buckets(app, campaign_id, interval, tz)
    labels = [label_of_bucket(b["start"], interval) for b in data["buckets"]]
    assert len(set(labels)) == len(labels)
    assert set(expected) <= set(labels), sorted(set(expected) - set(labels))
    for bucket, name in zip(data["buckets"], labels, strict=True):
        shown = {k: v for k, v in bucket.items() if k not in ("start", "end")}
        assert shown == expected_figures(expected.get(name, Counter())), (name, bucket)
    chained = zip(data["buckets"], data["buckets"][1:], strict=False)
    assert all(a["end"] == b["start"] for a, b in chained)
    assert (data["buckets"][0]["start"], data["buckets"][-1]["end"]) == (data["from"], data["to"])


def assert_sums_to_totals(data: dict[str, Any], stats: dict[str, Any]) -> None:
    """The buckets add up to `totals` and to the campaign's counters."""
    sums = {name: sum(b[name] for b in data["buckets"]) for name in FIELDS}
    assert {name: data["totals"][name] for name in FIELDS} == sums
    assert sums["calls_started"] == stats["attempts"]["total"]
    assert {o: sums[o] for o in OUTCOMES} == stats["attempts"]["by_outcome"]
    assert sums["answered_talk_seconds"] == stats["total_call_duration"]
    assert sums["contacts_completed"] == stats["calls_completed"]
    assert sums["contacts_failed"] == stats["calls_failed"]
    assert data["totals"]["success_rate"] == stats["success_rate"]


# -- random streams ------------------------------------------------------------------------------


@PER_BACKEND
@given(rng=st.randoms(use_true_random=True), scene=st.sampled_from(SCENES))
async def test_random_streams_bucket_like_the_raw_rows(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, rng: random.Random, scene: Any
) -> None:
    """minute, hour and day buckets in the scene's zone: raw-row recomputation and campaign totals."""
    scenario = draw_scenario(RandomChooser(rng), scene)
    campaign_id, statuses = await play(client, auth, scenario)
    stats = await full_stats(client, auth, campaign_id)
    event(f"{scene[0]} {scene[1]}")
    event(f"calls started: {min(stats['attempts']['total'] // 5 * 5, 20)}+")
    event(f"events rejected or duplicate: {sum(s != 'applied' for s in statuses) > 0}")
    for interval in ("day", "hour", "minute"):
        series = await timeseries(client, auth, campaign_id, interval=interval, **scenario.window())
        assert series["interval"] == interval
        assert series["campaign_id"] == campaign_id
        assert_matches_raw(app, campaign_id, series)
        assert_sums_to_totals(series, stats)
    utc_hours = await timeseries(client, auth, campaign_id, interval="hour", **scenario.utc_window())
    assert_matches_raw(app, campaign_id, utc_hours)
    assert_sums_to_totals(utc_hours, stats)


async def test_fall_back_hours_and_25_hour_day(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A call in each 01:00 of New York's fall-back night lands in its own bucket; the day holds both."""
    campaign_id = await new_campaign(client, auth)
    phones = [phone_of(1), phone_of(2)]
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    events = [  # 01:30 EDT, then 01:30 EST one hour later
        _ended(campaign_id, phones[0], "c1", "2024-11-03T05:30:00Z", "answered", 40),
        _ended(campaign_id, phones[1], "c2", "2024-11-03T06:30:00Z", "answered", 2),
    ]
    response = await client.post("/recordCallEvents", json={"events": events}, headers=auth)
    assert response.json()["data"]["applied"] == 2
    window = {"from": "2024-11-03T00:00:00", "to": "2024-11-04T00:00:00", "tz": "America/New_York"}
    hours = await timeseries(client, auth, campaign_id, interval="hour", **window)
    assert len(hours["buckets"]) == 25
    busy = [
        (b["start"], b["end"], b["answered_talk_seconds"]) for b in hours["buckets"] if b["calls_started"]
    ]
    assert busy == [
        ("2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", 40),
        ("2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00", 2),
    ]
    days = await timeseries(client, auth, campaign_id, interval="day", **window)
    assert [(b["start"], b["end"], b["calls_started"]) for b in days["buckets"]] == [
        ("2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00", 2)
    ]


async def test_spring_forward_day_has_23_hours(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Berlin's spring-forward day: 23 hour buckets, no 02:00, 03:00 follows 01:00."""
    campaign_id = await new_campaign(client, auth)
    window = {"from": "2024-03-31T00:00:00", "to": "2024-04-01T00:00:00", "tz": "Europe/Berlin"}
    hours = await timeseries(client, auth, campaign_id, interval="hour", **window)
    starts = [b["start"] for b in hours["buckets"]]
    assert len(starts) == 23
    assert starts[1:3] == ["2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00"]
    assert all(b["calls_started"] == 0 and b["success_rate"] == 0 for b in hours["buckets"])


@pytest.mark.parametrize(
    ("tz", "first_day_ends"),
    [("Asia/Kolkata", "2024-06-01T18:30:00Z"), ("Asia/Kathmandu", "2024-06-01T18:15:00Z")],
)
async def test_day_boundary_in_fractional_offset_zone(
    client: httpx.AsyncClient, auth: dict[str, str], tz: str, first_day_ends: str
) -> None:
    """One second before local midnight counts for June 1, local midnight itself for June 2."""
    campaign_id = await new_campaign(client, auth)
    phones = [phone_of(1), phone_of(2)]
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    edge = datetime.fromisoformat(first_day_ends)
    before = (edge - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        _ended(campaign_id, phones[0], "c1", before, "busy", 0),
        _ended(campaign_id, phones[1], "c2", first_day_ends, "voicemail", 9),
    ]
    assert (await client.post("/recordCallEvents", json={"events": events}, headers=auth)).status_code == 200
    days = await timeseries(
        client, auth, campaign_id, interval="day", **{"from": "2024-06-01", "to": "2024-06-03", "tz": tz}
    )
    assert [(b["start"][:10], b["busy"], b["voicemail"]) for b in days["buckets"]] == [
        ("2024-06-01", 1, 0),
        ("2024-06-02", 0, 1),
    ]
    hours = await timeseries(
        client,
        auth,
        campaign_id,
        interval="hour",
        **{"from": "2024-06-01T23:00", "to": "2024-06-02T01:00", "tz": tz},
    )
    assert [b["start"][11:] for b in hours["buckets"]] == [
        "23:00:00+" + _offset(tz),
        "00:00:00+" + _offset(tz),
    ]
    assert [b["calls_started"] for b in hours["buckets"]] == [1, 1]


async def test_default_window_is_first_call_until_now(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Without from/to: from the bucket of the first call start to the bucket holding now, zero-filled."""
    campaign_id = await new_campaign(client, auth)
    phones = [phone_of(1), phone_of(2)]
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    now = datetime.now(UTC)
    first = (now - timedelta(hours=5)).replace(microsecond=0)
    events = [
        _ended(campaign_id, phones[0], "c1", first.strftime("%Y-%m-%dT%H:%M:%SZ"), "answered", 30),
        _ended(
            campaign_id, phones[1], "c2", (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "busy", 0
        ),
    ]
    assert (await client.post("/recordCallEvents", json={"events": events}, headers=auth)).status_code == 200
    data = await timeseries(client, auth, campaign_id)
    assert (data["interval"], data["tz"]) == ("hour", "UTC")
    assert datetime.fromisoformat(data["from"]) == first.replace(minute=0, second=0)
    assert datetime.fromisoformat(data["buckets"][-1]["start"]) <= now < datetime.fromisoformat(data["to"])
    assert len(data["buckets"]) in (6, 7)
    assert sum(b["calls_started"] for b in data["buckets"]) == 2
    assert data["totals"]["answered_talk_seconds"] == 30
    assert sum(1 for b in data["buckets"] if b["calls_started"] == 0) == len(data["buckets"]) - 2


async def test_empty_campaign_window_starts_at_creation(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A campaign with no call yet: one zero bucket per day since it was created."""
    campaign_id = await new_campaign(client, auth)
    data = await timeseries(client, auth, campaign_id, interval="day")
    assert len(data["buckets"]) == 1
    assert data["totals"] == expected_figures(Counter())


async def test_default_window_holds_every_outcome(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """The default window's totals equal the campaign's, even when a call ends 'before' it started."""
    campaign_id = await new_campaign(client, auth)
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": phone_of(1)}]}, headers=auth
    )
    now = datetime.now(UTC).replace(microsecond=0)
    started = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ended = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        _started(campaign_id, phone_of(1), "c1", started),
        _ended(campaign_id, phone_of(1), "c1", ended, "answered", 50),
    ]
    response = await client.post("/recordCallEvents", json={"events": events}, headers=auth)
    assert response.json()["data"]["applied"] == 2
    stats = await full_stats(client, auth, campaign_id)
    data = await timeseries(client, auth, campaign_id)
    assert data["totals"]["answered"] == stats["attempts"]["by_outcome"]["answered"] == 1
    assert data["totals"]["answered_talk_seconds"] == stats["total_call_duration"] == 50


async def test_cost_follows_buckets_not_calls(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """The same queries, none on calls/contacts/events, for 1 call or 300 calls: the minutes are read."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # the change feed's pg_notify, sent after the previous write, may land in the window: not ours
        if statement.lower().startswith("select") and "pg_notify" not in statement:
            statements.append(statement.lower())

    window = {"interval": "hour", "from": "2024-01-16", "to": "2024-01-17"}
    shapes = []
    for size in (1, 300):
        campaign_id = await new_campaign(client, auth)
        phones = [phone_of(n) for n in range(size)]
        body = {"contacts": [{"phone": p} for p in phones]}
        assert (await client.post(f"/addContacts/{campaign_id}", json=body, headers=auth)).status_code == 200
        events = [
            _ended(campaign_id, phone, f"{campaign_id[:8]}-{n}", "2024-01-16T10:00:00Z", "busy", 0)
            for n, phone in enumerate(phones)
        ]
        assert (
            await client.post("/recordCallEvents", json={"events": events}, headers=auth)
        ).status_code == 200
        statements.clear()
        sa_event.listen(app.db.engine, "before_cursor_execute", seen)
        try:
            data = await timeseries(client, auth, campaign_id, **window)
        finally:
            sa_event.remove(app.db.engine, "before_cursor_execute", seen)
        assert data["totals"]["busy"] == size
        shapes.append(list(statements))
    assert shapes[0] == shapes[1]
    queries = shapes[0]
    assert 1 <= len(queries) <= 5
    assert any("campaign_timeseries" in q for q in queries)
    for query in queries:
        assert " calls" not in query and "contacts" not in query and "call_events" not in query


# -- SQLite and PostgreSQL answer alike ----------------------------------------------------------


@pytest.fixture
async def twin_clients(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[list[tuple[httpx.AsyncClient, dict[str, str]]]]:
    """Two apps on fresh databases, SQLite and PostgreSQL, each with a client and a write key."""
    if not PG_URL:
        pytest.skip("no CALLSTATS_TEST_DATABASE_URL")
    sqlite_path = tmp_path / "twin.db"
    shutil.copy(sqlite_template, sqlite_path)
    pg_url: str = request.getfixturevalue("pg_migrated")
    _truncate(pg_url)
    urls = (f"sqlite:///{sqlite_path}", pg_url)
    apps = [create_app(Settings(database_url=url, redis_url=None, counter_slots=4)) for url in urls]
    pairs = []
    for application in apps:
        transport = httpx.ASGITransport(app=application)
        http = httpx.AsyncClient(transport=transport, base_url="http://callstats.test")
        pairs.append((http, {"x-api-key": create_key(application.db, "acme", "write").plaintext}))
    yield pairs
    for (http, _), application in zip(pairs, apps, strict=True):
        await http.aclose()
        await application.aclose()


def without_ids(data: dict[str, Any]) -> dict[str, Any]:
    """A response's data without the campaign's id (each database has its own)."""
    return {k: v for k, v in data.items() if k != "campaign_id"}


@settings(PER_BACKEND, max_examples=12)  # each example runs on both databases
@given(rng=st.randoms(use_true_random=True), scene=st.sampled_from(SCENES))
async def test_sqlite_and_postgresql_give_identical_json(
    twin_clients: list[tuple[httpx.AsyncClient, dict[str, str]]], rng: random.Random, scene: Any
) -> None:
    """The same stream on both backends: identical event results, stats and series, bucket for bucket."""
    scenario = draw_scenario(RandomChooser(rng), scene)
    answers: list[list[Any]] = []
    for http, auth in twin_clients:
        campaign_id, statuses = await play(http, auth, scenario)
        stats = await full_stats(http, auth, campaign_id)
        series = [
            without_ids(await timeseries(http, auth, campaign_id, interval=interval, **scenario.window()))
            for interval in ("minute", "hour", "day")
        ]
        answers.append([statuses, without_ids(stats), *series])
    sqlite_answer, postgresql_answer = answers
    assert sqlite_answer == postgresql_answer
    assert (
        sum(b["calls_started"] for b in sqlite_answer[3]["buckets"]) == sqlite_answer[1]["attempts"]["total"]
    )


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "week"}, "interval"),
        ({"interval": ""}, "interval"),
        ({"tz": "Mars/Olympus_Mons"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"tz": "+05:30"}, "tz"),
        ({"from": "yesterday", "to": "2024-01-02T00:00:00Z"}, "from"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-13-01"}, "to"),
        ({"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "to"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "to"),
        ({"from": "x" * 65}, "from"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], params: dict[str, str], field: str
) -> None:
    """A malformed interval, zone or time is a 400 VALIDATION_ERROR whose message names the parameter."""
    campaign_id = await new_campaign(client, auth)
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["success"], body["error"]) == (False, "VALIDATION_ERROR")
    assert field in body["message"]


async def test_other_accounts_and_unknown_campaigns_are_404(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Any
) -> None:
    """Another account's campaign answers like a missing one (404); a bad id is 400; no key is 401."""
    campaign_id = await new_campaign(client, auth)
    stranger = {"x-api-key": make_key(account="globex", scope="read")}
    theirs = await client.get(f"/getCampaignTimeseries/{campaign_id}", headers=stranger)
    unknown = await client.get(f"/getCampaignTimeseries/{uuid.uuid4()}", headers=auth)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()
    assert theirs.json()["error"] == "NOT_FOUND"
    malformed = await client.get("/getCampaignTimeseries/not-a-uuid", headers=auth)
    assert (malformed.status_code, malformed.json()["error"]) == (400, "VALIDATION_ERROR")
    anonymous = await client.get(f"/getCampaignTimeseries/{campaign_id}")
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "UNAUTHORIZED")
    reader = {"x-api-key": make_key(scope="read")}
    assert (await client.get(f"/getCampaignTimeseries/{campaign_id}", headers=reader)).status_code == 200


@pytest.mark.parametrize(
    ("interval", "window"),
    [
        ("minute", ("2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z")),
        ("hour", ("2024-01-01T00:00:00Z", "2025-03-01T00:00:00Z")),
        ("day", ("2000-01-01T00:00:00Z", "2030-01-01T00:00:00Z")),
    ],
)
async def test_too_many_buckets_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], interval: str, window: tuple[str, str]
) -> None:
    """A window of more than 10,000 buckets is refused before anything is read."""
    campaign_id = await new_campaign(client, auth)
    params = {"interval": interval, "from": window[0], "to": window[1]}
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert "10000" in response.json()["message"]


async def test_exactly_10000_minute_buckets_are_served(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The limit itself is allowed: 10,000 whole minutes give 10,000 zero buckets."""
    campaign_id = await new_campaign(client, auth)
    params = {"interval": "minute", "from": "2024-01-01T00:00:00Z", "to": "2024-01-07T22:40:00Z"}
    data = await timeseries(client, auth, campaign_id, **params)
    assert len(data["buckets"]) == 10_000


async def test_10001_buckets_are_refused(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A window that spans 10,001 minute buckets is a 400, not 10,001 buckets."""
    campaign_id = await new_campaign(client, auth)
    params = {"interval": "minute", "from": "2024-01-01T00:00:30Z", "to": "2024-01-07T22:40:30Z"}
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
    assert response.status_code == 400, f"{len(response.json()['data']['buckets'])} buckets"


async def test_exactly_10000_day_buckets_are_served(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """10,000 whole UTC days are within the limit."""
    campaign_id = await new_campaign(client, auth)
    params = {"interval": "day", "from": "2000-01-01T00:00:00Z", "to": "2027-05-19T00:00:00Z"}
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["buckets"]) == 10_000


@pytest.mark.parametrize(
    "params",
    [
        {"interval": "day", "from": "9999-12-31T01:00:00Z", "to": "9999-12-31T23:00:00Z"},
        {
            "interval": "hour",
            "from": "0001-01-01T00:00:00Z",
            "to": "0001-01-01T03:00:00Z",
            "tz": "America/New_York",
        },
    ],
)
async def test_extreme_dates_are_400(app: CallstatsApp, auth: dict[str, str], params: dict[str, str]) -> None:
    """Valid ISO times whose buckets fall outside the representable range are a 400, not a 500."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://callstats.test") as http:
        campaign_id = await new_campaign(http, auth)
        response = await http.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
    assert response.status_code == 400, response.text


# -- small helpers -------------------------------------------------------------------------------


def _ended(
    campaign_id: str, phone: str, call_id: str, at: str, outcome: str, duration: int
) -> dict[str, Any]:
    """A call.ended event (it also starts the call when its call.started was never seen)."""
    return ended_call(campaign_id, phone, call_id, outcome, duration, at, event_id=f"{call_id}-e")


def _started(campaign_id: str, phone: str, call_id: str, at: str) -> dict[str, Any]:
    """A call.started event."""
    return started_call(campaign_id, phone, call_id, at, event_id=f"{call_id}-s")


def _offset(tz: str) -> str:
    return {"Asia/Kolkata": "05:30", "Asia/Kathmandu": "05:45"}[tz]
