"""getCampaignStats?include=raw_outcomes: ended calls by raw carrier outcome, counted independently.

The expected counts come from the events the tests send (and, for random streams, from the oracle's
replay of them), never from the code under test; reconcile's recomputation from the call rows must
agree, and the seed's answer without `include` must not move by a byte.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from callstats.app import CallstatsApp
from callstats.stats.reconcile import differences
from tests.agreement import assert_stats
from tests.conftest import new_campaign
from tests.factories import ended_call, record, started_call
from tests.oracle import (
    BASE_MS,
    RETRYABLE,
    CampaignOracle,
    DrawChooser,
    Event,
    Rules,
    batches,
    interleave,
    perturb,
    phone_of,
    simulate_contact,
)
from tests.seed import SEED_FIELDS

PER_BACKEND = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# (outcome, raw outcome or None) of each contact's calls, in order, for the fixed campaign below
PLAN: list[list[tuple[str, str | None]]] = [
    [("answered", "twilio:completed")],
    [("busy", "twilio:busy"), ("busy", "twilio:busy"), ("no_answer", "twilio:no-answer")],
    [("voicemail", "twilio:machine_end_beep"), ("answered", None)],
    [("failed", "retell:dial_failed")],
    [("busy", "retell:dial_busy"), ("answered", "retell:user_hangup")],
    [("no_answer", None)],
    [("failed", "vapi:pipeline-error-openai-llm-failed")],
]


async def get_stats(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, include: str | None = None
) -> httpx.Response:
    """A getCampaignStats answer, 200 asserted."""
    params = {"include": include} if include is not None else None
    response = await client.get(f"/getCampaignStats/{campaign_id}", params=params, headers=auth)
    assert response.status_code == 200, response.text
    return response


async def raw_outcomes(client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> Any:
    """The raw_outcomes section of getCampaignStats?include=raw_outcomes."""
    return (await get_stats(client, auth, campaign_id, "raw_outcomes")).json()["data"]["raw_outcomes"]


async def planned_campaign(client: httpx.AsyncClient, auth: dict[str, str], with_raw: bool = True) -> str:
    """A campaign (3 attempts, every failure retried) whose calls follow PLAN, one request per call,
    with the raw outcomes (or without any when `with_raw` is false)."""
    campaign_id = await new_campaign(client, auth, max_attempts=3)
    phones = [phone_of(n) for n in range(len(PLAN) + 1)]  # the last contact is never called
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    assert added.json()["data"]["accepted"] == len(phones)
    for n, calls in enumerate(PLAN):
        for attempt, (outcome, raw) in enumerate(calls):
            call_id = f"{campaign_id}-{n}-{attempt}"
            at = f"2024-01-16T09:{n:02d}:{attempt * 10:02d}Z"
            end = ended_call(campaign_id, phones[n], call_id, outcome, 30 if outcome == "answered" else 0, at)
            if raw is not None and with_raw:
                end["raw_outcome"] = raw
            assert (await record(client, auth, started_call(campaign_id, phones[n], call_id, at), end))[
                "applied"
            ] == 2
    return campaign_id


def expected_from_plan() -> dict[str, int]:
    """The ended calls of PLAN by raw outcome, those without one left out, in code point order."""
    counted = Counter(raw for calls in PLAN for _, raw in calls if raw is not None)
    return dict(sorted(counted.items()))


async def test_raw_outcomes_count_every_ended_call_by_its_raw_outcome(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """Every attempt counts (twilio:busy twice for one contact); calls without one are not there; the
    keys come sorted; the call rows say the same; reconcile finds no difference."""
    campaign_id = await planned_campaign(client, auth)
    got = await raw_outcomes(client, auth, campaign_id)
    assert got == expected_from_plan()
    assert list(got) == sorted(got)
    assert got["twilio:busy"] == 2 and "None" not in got and None not in got
    with app.db.read() as conn:
        rows = conn.execute(
            text("SELECT raw_outcome FROM calls WHERE campaign_id = :c AND status = 'ended'"),
            {"c": campaign_id},
        ).scalars()
        assert Counter(raw for raw in rows if raw is not None) == got
        assert differences(conn, campaign_id) == []


async def test_a_campaign_without_raw_outcomes_has_an_empty_section(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """No call ended with a raw outcome (or none at all): `{}`, present, not absent or null."""
    empty = await new_campaign(client, auth)
    assert await raw_outcomes(client, auth, empty) == {}
    plain = await planned_campaign(client, auth, with_raw=False)
    assert await raw_outcomes(client, auth, plain) == {}


@pytest.mark.parametrize(
    ("include", "sections"),
    [
        ("raw_outcomes", ["raw_outcomes"]),
        ("raw_outcomes,attempts", ["attempts", "raw_outcomes"]),
        ("durations,raw_outcomes,attempts", ["attempts", "durations", "raw_outcomes"]),
    ],
)
async def test_raw_outcomes_come_after_the_seed_and_the_other_sections(
    client: httpx.AsyncClient, auth: dict[str, str], include: str, sections: list[str]
) -> None:
    """The seed's fields unchanged and first, then the sections asked for in a fixed order."""
    campaign_id = await planned_campaign(client, auth)
    plain = (await get_stats(client, auth, campaign_id)).json()["data"]
    data = (await get_stats(client, auth, campaign_id, include)).json()["data"]
    assert list(data) == SEED_FIELDS + sections
    assert {k: data[k] for k in SEED_FIELDS} == plain
    assert data["raw_outcomes"] == expected_from_plan()


async def test_without_include_the_answer_is_the_seeds_byte_for_byte(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The same calls with and without raw outcomes: the same plain body (ids aside) and, as the body is
    the same, the same ETag; only ?include=raw_outcomes tells them apart."""
    with_raw = await planned_campaign(client, auth)
    without = await planned_campaign(client, auth, with_raw=False)
    plain_with = await get_stats(client, auth, with_raw)
    plain_without = await get_stats(client, auth, without)
    assert plain_with.content.replace(with_raw.encode(), without.encode()) == plain_without.content
    assert list(plain_with.json()["data"]) == SEED_FIELDS
    assert b"raw_outcome" not in plain_with.content
    again = await get_stats(client, auth, with_raw)
    assert (again.content, again.headers["etag"]) == (plain_with.content, plain_with.headers["etag"])


async def test_the_etag_of_raw_outcomes_changes_with_them(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """If-None-Match gives 304 while the counts hold, 200 once another call ends with a raw outcome."""
    campaign_id = await planned_campaign(client, auth)
    first = await get_stats(client, auth, campaign_id, "raw_outcomes")
    plain_tag = (await get_stats(client, auth, campaign_id)).headers["etag"]
    assert first.headers["etag"] != plain_tag
    url = f"/getCampaignStats/{campaign_id}"
    headers = {**auth, "If-None-Match": first.headers["etag"]}
    assert (await client.get(url, params={"include": "raw_outcomes"}, headers=headers)).status_code == 304
    last = phone_of(len(PLAN))  # the contact never called
    end = {**ended_call(campaign_id, last, f"{campaign_id}-late", "busy"), "raw_outcome": "twilio:busy"}
    assert (await record(client, auth, end))["applied"] == 1
    changed = await client.get(url, params={"include": "raw_outcomes"}, headers=headers)
    assert changed.status_code == 200
    assert changed.json()["data"]["raw_outcomes"]["twilio:busy"] == 3


async def test_reconcile_names_a_corrupted_raw_outcome_count(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """A raw outcome count changed behind the service's back is reported as `raw_outcomes`, alone."""
    campaign_id = await planned_campaign(client, auth)
    with app.db.engine.begin() as conn:
        changed = conn.execute(
            text(
                "UPDATE campaign_raw_outcomes SET calls = calls + 1"
                " WHERE campaign_id = :c AND raw_outcome = 'twilio:busy'"
                " AND slot = (SELECT MIN(slot) FROM campaign_raw_outcomes"
                " WHERE campaign_id = :c AND raw_outcome = 'twilio:busy')"
            ),
            {"c": campaign_id},
        )
        assert changed.rowcount == 1
    with app.db.read() as conn:
        found = differences(conn, campaign_id)
    assert found is not None and [d.field for d in found] == ["raw_outcomes"]
    assert found[0].counters["twilio:busy"] == found[0].recomputed["twilio:busy"] + 1 == 3


# -- random streams ------------------------------------------------------------------------------------


def raw_of(call_id: str, outcome: str) -> str | None:
    """The raw outcome a simulated carrier gives a call ended with `outcome` (none for about a quarter
    of the calls): a function of the event, so equal events keep equal bodies."""
    pick = sum(map(ord, call_id)) % 4
    return None if pick == 0 else f"sim:{outcome}:{pick}"


def body_of(event: Event, campaign_id: str, prefix: str) -> dict[str, Any]:
    """The event's body, with its raw outcome when it ends a call."""
    body = event.body(campaign_id, prefix)
    raw = raw_of(event.call_id, body["outcome"]) if "outcome" in body else None
    if raw is not None:
        body["raw_outcome"] = raw
    return body


def oracle_raw_outcomes(oracle: CampaignOracle) -> dict[str, int]:
    """The ended calls of the oracle's replay by the raw outcome their ending event carried."""
    counted = Counter(
        raw_of(call_id, call.outcome)
        for call_id, call in oracle.calls.items()
        if call.ended and call.outcome is not None and raw_of(call_id, call.outcome) is not None
    )
    return dict(sorted((str(raw), n) for raw, n in counted.items()))


@PER_BACKEND
@given(data=st.data())
async def test_random_streams_count_raw_outcomes_as_the_oracle_does(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, data: st.DataObject
) -> None:
    """Retries, reorderings, redeliveries and refused events: after every request the raw outcome counts
    equal the oracle's ended calls, and the API, reconcile and the oracle agree on everything else."""
    chooser = DrawChooser(data)
    rules = Rules(chooser.integer(1, 3), frozenset(o for o in RETRYABLE if chooser.integer(0, 2)))
    campaign_id = await new_campaign(
        client, auth, max_attempts=rules.max_attempts, retry_on=sorted(rules.retry_on)
    )
    oracle = CampaignOracle(rules.max_attempts, rules.retry_on)
    phones = [phone_of(n) for n in range(chooser.integer(1, 6))]
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    assert added.json()["data"]["accepted"] == oracle.add_contacts(phones)[0]
    streams = [
        simulate_contact(chooser, f"k{i}", phone, rules, BASE_MS + chooser.integer(0, 3_600_000))
        for i, phone in enumerate(phones)
    ]
    stream = perturb(chooser, interleave(chooser, streams), phones, chooser.integer(0, 6))
    prefix = f"{uuid.uuid4().hex[:12]}:"
    for request in batches(chooser, stream, 10):
        body = {"events": [body_of(e, campaign_id, prefix) for e in request]}
        response = await client.post("/recordCallEvents", json=body, headers=auth)
        got = [(r["status"], r["error"]) for r in response.json()["data"]["results"]]
        assert got == [oracle.deliver(e) for e in request]
        await assert_stats(client, auth, app, campaign_id, oracle)  # reconcile included: no difference
        assert await raw_outcomes(client, auth, campaign_id) == oracle_raw_outcomes(oracle)
    event(f"raw outcomes counted: {min(sum(oracle_raw_outcomes(oracle).values()), 5)}+")
