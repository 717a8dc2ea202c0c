"""Issue 8, item 6: a call's start does not depend on the order its events arrive in.

A call starts at the earliest `occurred_at` of its `call.started` events, whenever they arrive
(until one arrives, at the event that opened the call); the campaign's `started_at` and the time
series' `calls_started` follow it. Every order of a call's events, on both backends, gives the same
getCampaignStats, getCampaignStats?include=attempts,durations and getCampaignTimeseries answers,
checked against reconcile's recomputation from the raw rows and the independent oracle.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstats.app import CallstatsApp
from callstats.stats.reconcile import live_differences
from tests.agreement import assert_stats
from tests.conftest import new_campaign
from tests.oracle import BASE_MS, EPOCH, CampaignOracle, Event, epoch_ms, iso, phone_of

MINUTE = 60_000
ORDERS = list(itertools.permutations(range(3)))  # the six orders of started, answered, ended


def minute_text(at: int) -> str:
    """The start of the UTC minute holding `at`, as the time series writes it."""
    return (EPOCH + timedelta(minutes=at // MINUTE)).isoformat()


WINDOW = {"interval": "minute", "from": iso(BASE_MS - 10 * MINUTE), "to": iso(BASE_MS + 10 * MINUTE)}


def three_events(
    tag: str, phone: str, start: int, answer: int, end: int, outcome: str, talk: int
) -> list[Event]:
    """started, answered and ended of one call, in that order."""
    return [
        Event(f"{tag}-s", phone, tag, "call.started", start),
        Event(f"{tag}-a", phone, tag, "call.answered", answer),
        Event(f"{tag}-e", phone, tag, "call.ended", end, outcome, talk),
    ]


def calls() -> list[list[Event]]:
    """Two calls whose events straddle minute boundaries (each event in its own minute or not)."""
    return [
        three_events(
            "a", phone_of(1), BASE_MS - 500, BASE_MS + 250, BASE_MS + MINUTE + 30_000, "answered", 90
        ),
        three_events(
            "b", phone_of(2), BASE_MS - 30_000, BASE_MS + 70_000, BASE_MS + 2 * MINUTE, "voicemail", 12
        ),
    ]


async def answers(client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> dict[str, Any]:
    """The three reads, ids left out."""
    found: dict[str, Any] = {}
    for name, url, params in [
        ("stats", f"/getCampaignStats/{campaign_id}", {}),
        ("include", f"/getCampaignStats/{campaign_id}", {"include": "attempts,durations"}),
        ("series", f"/getCampaignTimeseries/{campaign_id}", WINDOW),
    ]:
        response = await client.get(url, params=params, headers=auth)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        data.pop("campaign_id")
        found[name] = data
    return found


async def deliver(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign_id: str,
    prefix: str,
    events: list[Event],
    one_request: bool,
) -> list[str]:
    """Send the events in this order, in one request or one request each; their statuses."""
    requests = [events] if one_request else [[e] for e in events]
    statuses = []
    for request in requests:
        body = {"events": [e.body(campaign_id, prefix) for e in request]}
        response = await client.post("/recordCallEvents", json=body, headers=auth)
        assert response.status_code == 200, response.text
        statuses += [r["status"] for r in response.json()["data"]["results"]]
    return statuses


@pytest.mark.parametrize("one_request", [False, True], ids=["request-each", "one-batch"])
async def test_all_six_orders_give_identical_answers(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, one_request: bool
) -> None:
    """The issue's example: every order of started/answered/ended, two calls, same three answers."""
    seen: list[dict[str, Any]] = []
    for n, order in enumerate(ORDERS):
        campaign_id = await new_campaign(client, auth, max_attempts=1, retry_on=[])
        oracle = CampaignOracle(1, frozenset())
        response = await client.post(
            f"/addContacts/{campaign_id}",
            json={"contacts": [{"phone": phone_of(1)}, {"phone": phone_of(2)}]},
            headers=auth,
        )
        assert response.status_code == 200, response.text
        oracle.add_contacts([phone_of(1), phone_of(2)])
        events = [call[i] for i in order for call in calls()]
        statuses = await deliver(client, auth, campaign_id, f"o{n}:", events, one_request)
        assert statuses == [oracle.deliver(e)[0] for e in events] == ["applied"] * 6
        await assert_stats(client, auth, app, campaign_id, oracle)
        assert live_differences(app.db, campaign_id) == []
        seen.append(await answers(client, auth, campaign_id))
    assert all(found == seen[0] for found in seen), "an order changed an answer"
    first = seen[0]
    assert epoch_ms(first["stats"]["started_at"]) == BASE_MS - 30_000
    assert epoch_ms(first["stats"]["completed_at"]) == (BASE_MS + 2 * MINUTE)
    assert first["include"]["attempts"]["total"] == 2
    started = {b["start"]: b["calls_started"] for b in first["series"]["buckets"] if b["calls_started"]}
    assert started == {"2024-01-16T09:59:00+00:00": 2}  # both calls started in the minute before BASE
    assert first["series"]["totals"]["calls_started"] == 2


async def test_a_late_start_moves_the_campaign_start_and_the_series(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """answered and ended first, started last and two minutes earlier: the start moves back."""
    campaign_id = await new_campaign(client, auth, max_attempts=1, retry_on=[])
    oracle = CampaignOracle(1, frozenset())
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": phone_of(3)}]}, headers=auth
    )
    oracle.add_contacts([phone_of(3)])
    start, answer, end = three_events(
        "c", phone_of(3), BASE_MS - 2 * MINUTE, BASE_MS, BASE_MS + MINUTE, "answered", 5
    )
    for event, expected_start in [(answer, BASE_MS), (end, BASE_MS), (start, BASE_MS - 2 * MINUTE)]:
        assert await deliver(client, auth, campaign_id, "late:", [event], True) == ["applied"]
        oracle.deliver(event)
        data = await assert_stats(client, auth, app, campaign_id, oracle)
        assert epoch_ms(data["started_at"]) == (expected_start)
        series = (await answers(client, auth, campaign_id))["series"]
        assert [b["start"] for b in series["buckets"] if b["calls_started"]] == [minute_text(expected_start)]
    again = Event("c-s2", phone_of(3), "c", "call.started", BASE_MS - 3 * MINUTE)
    assert await deliver(client, auth, campaign_id, "late:", [again], True) == ["applied"]
    oracle.deliver(again)
    assert epoch_ms((await assert_stats(client, auth, app, campaign_id, oracle))["started_at"]) == (
        BASE_MS - 3 * MINUTE
    )
    later = Event("c-s3", phone_of(3), "c", "call.started", BASE_MS - MINUTE)
    response = await client.post(
        "/recordCallEvents", json={"events": [later.body(campaign_id, "late:")]}, headers=auth
    )
    result = response.json()["data"]["results"][0]
    assert (result["status"], result["reason"]) == ("applied", "call already started")  # changes nothing


async def test_a_skewed_first_start_moves_the_campaign_start_later(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """The first call.started is the call's start even when later than the event that opened it.

    The campaign's started_at (a MIN over calls) is then recomputed, not left at the opening time.
    """
    campaign_id = await new_campaign(client, auth, max_attempts=1, retry_on=[])
    oracle = CampaignOracle(1, frozenset())
    phones = [phone_of(4), phone_of(5)]
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    oracle.add_contacts(phones)
    events = [
        Event("x-a", phones[0], "x", "call.answered", BASE_MS),  # opens x at BASE
        Event("y-s", phones[1], "y", "call.started", BASE_MS + 3 * MINUTE),
        Event("x-s", phones[0], "x", "call.started", BASE_MS + 5 * MINUTE),  # skewed: x starts later
    ]
    expected = [BASE_MS, BASE_MS, BASE_MS + 3 * MINUTE]
    for event, first in zip(events, expected, strict=True):
        assert await deliver(client, auth, campaign_id, "skew:", [event], True) == ["applied"]
        oracle.deliver(event)
        assert epoch_ms((await assert_stats(client, auth, app, campaign_id, oracle))["started_at"]) == (first)


PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def deliveries(draw: st.DrawFn) -> list[Event]:
    """Up to three calls of distinct contacts, with skewed clocks, shuffled and partly redelivered."""
    events: list[Event] = []
    for n in range(draw(st.integers(1, 3))):
        offsets = [draw(st.integers(-3 * MINUTE, 3 * MINUTE)) for _ in range(3)]
        outcome = draw(st.sampled_from(["answered", "busy", "voicemail"]))
        start, answer, end = (BASE_MS + o for o in offsets)
        events += three_events(
            f"p{n}", phone_of(10 + n), start, answer, end, outcome, draw(st.integers(0, 99))
        )
        events += [
            Event(
                f"p{n}-s{k}",
                phone_of(10 + n),
                f"p{n}",
                "call.started",
                BASE_MS + draw(st.integers(-4 * MINUTE, 4 * MINUTE)),
            )
            for k in range(draw(st.integers(0, 2)))
        ]
    events = draw(st.permutations(events))
    repeats = draw(st.lists(st.sampled_from(events), max_size=3))
    return [*events, *repeats]


@given(stream=deliveries())
@PROPERTY
async def test_random_orders_and_duplicates_match_reconcile_and_the_oracle(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, stream: list[Event]
) -> None:
    """Any order, skew and redelivery: stats equal reconcile and the oracle; calls_started per minute
    equal an independent count of the oracle's call starts."""
    campaign_id = await new_campaign(client, auth, max_attempts=1, retry_on=[])
    oracle = CampaignOracle(1, frozenset())
    phones = sorted({e.contact for e in stream})
    await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    oracle.add_contacts(phones)
    prefix = f"{uuid.uuid4().hex[:8]}:"  # the examples share one database and account
    for event in stream:
        body = {"events": [event.body(campaign_id, prefix)]}
        response = await client.post("/recordCallEvents", json=body, headers=auth)
        result = response.json()["data"]["results"][0]
        assert (result["status"], result["error"]) == oracle.deliver(event)
    await assert_stats(client, auth, app, campaign_id, oracle)
    params = {"interval": "minute", "from": iso(BASE_MS - 10 * MINUTE), "to": iso(BASE_MS + 10 * MINUTE)}
    response = await client.get(f"/getCampaignTimeseries/{campaign_id}", params=params, headers=auth)
    series = response.json()["data"]
    got = {b["start"]: b["calls_started"] for b in series["buckets"] if b["calls_started"]}
    expected = Counter(
        iso(c.started_at // MINUTE * MINUTE).replace(".000Z", "+00:00") for c in oracle.calls.values()
    )
    assert got == dict(expected)
