"""Property tests: random campaigns and event streams through the public API.

After every request the API's numbers must equal (a) reconcile's recomputation
from the raw rows and (b) the independent oracle's replay of the events, and
every invariant of the semantics page must hold.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from callstats.app import CallstatsApp
from callstats.db.schema import contacts
from tests.agreement import add_contacts, assert_stats, post_events
from tests.conftest import new_campaign
from tests.oracle import (
    BASE_MS,
    RETRYABLE,
    CampaignOracle,
    DrawChooser,
    Event,
    Rules,
    batches,
    chance,
    epoch_ms,
    interleave,
    perturb,
    phone_of,
    pick,
    simulate_contact,
    with_phone_forms,
    written_forms,
)
from tests.seed import SEED_EXAMPLE, SEED_FIELDS

PER_BACKEND = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def contact_rows(chooser: DrawChooser, numbers: list[int]) -> list[str]:
    """Each number written some way, a few of them twice (the second is a duplicate)."""
    rows = [pick(chooser, written_forms(n)) for n in numbers]
    repeats = [pick(chooser, written_forms(n)) for n in numbers if chance(chooser, 4)]
    return rows + repeats


@PER_BACKEND
@given(data=st.data())
async def test_random_streams_match_reconcile_and_oracle(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, data: st.DataObject
) -> None:
    """Random settings, contacts and perturbed streams: API == reconcile == oracle after each request."""
    chooser = DrawChooser(data)
    rules = Rules(chooser.integer(1, 4), frozenset(o for o in RETRYABLE if chooser.integer(0, 3)))
    campaign_id = await new_campaign(
        client, auth, max_attempts=rules.max_attempts, retry_on=sorted(rules.retry_on)
    )
    prefix = f"{uuid.uuid4().hex[:12]}:"
    oracle = CampaignOracle(rules.max_attempts, rules.retry_on)
    numbers = data.draw(st.lists(st.integers(0, 998), min_size=1, max_size=8, unique=True))
    await add_contacts(client, auth, campaign_id, contact_rows(chooser, numbers), oracle)
    await assert_stats(client, auth, app, campaign_id, oracle)

    phones = [phone_of(n) for n in numbers]
    streams = [
        simulate_contact(chooser, f"k{i}", phone, rules, BASE_MS + chooser.integer(0, 3_600_000))
        for i, phone in enumerate(phones)
    ]
    stream = with_phone_forms(
        chooser, interleave(chooser, streams), {phone_of(n): written_forms(n) for n in numbers}
    )
    stream = perturb(chooser, stream, phones, chooser.integer(0, 10))
    event(f"calls: {len({e.call_id for e in stream}) // 5 * 5}+")
    for request in batches(chooser, stream, 12):
        got = await post_events(client, auth, campaign_id, prefix, request)
        assert got == [oracle.deliver(e) for e in request]
        for status, error in got:
            event(f"event {status} {error or ''}".strip())
        await assert_stats(client, auth, app, campaign_id, oracle)

    if chance(chooser, 2):  # contacts added late: a finished campaign is no longer complete
        unused = sorted(set(range(999)) - set(numbers))
        late = data.draw(st.lists(st.sampled_from(unused), min_size=1, max_size=2))
        await add_contacts(client, auth, campaign_id, [phone_of(n) for n in late], oracle)
        after = await assert_stats(client, auth, app, campaign_id, oracle)
        assert after["completed_at"] is None
        assert after["calls_pending"] >= 1


async def test_reordered_call_starts_at_its_call_started(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """ended before started: the call starts at the ended event, then at the late call.started's time."""
    campaign_id = await new_campaign(client, auth, max_attempts=2, retry_on=["busy"])
    oracle = CampaignOracle(2, frozenset({"busy"}))
    phone = phone_of(7)
    await add_contacts(client, auth, campaign_id, [phone], oracle)
    ended = Event("e1", phone, "c1", "call.ended", BASE_MS + 60_000, "answered", 42)
    started = Event("s1", phone, "c1", "call.started", BASE_MS)
    got = await post_events(client, auth, campaign_id, "reorder:", [ended, started])
    assert got == [("applied", None), ("applied", None)] == [oracle.deliver(ended), oracle.deliver(started)]
    data = await assert_stats(client, auth, app, campaign_id, oracle)
    assert (data["calls_completed"], data["total_call_duration"]) == (1, 42)
    assert epoch_ms(data["started_at"]) == BASE_MS
    assert epoch_ms(data["completed_at"]) == BASE_MS + 60_000


async def test_retry_with_repeated_outcome_counts_each_attempt(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """Calls seen only by their ended event, same outcome each time: the third busy fails the contact."""
    campaign_id = await new_campaign(client, auth, max_attempts=3, retry_on=["busy"])
    oracle = CampaignOracle(3, frozenset({"busy"}))
    phone = phone_of(8)
    await add_contacts(client, auth, campaign_id, [phone], oracle)
    for n in range(1, 4):
        event = Event(f"e{n}", phone, f"c{n}", "call.ended", BASE_MS + n * 1000, "busy")
        assert await post_events(client, auth, campaign_id, "busy3:", [event]) == [oracle.deliver(event)]
        data = await assert_stats(client, auth, app, campaign_id, oracle)
        assert data["calls_failed"] == (1 if n == 3 else 0)
    fourth = Event("e4", phone, "c4", "call.started", BASE_MS + 5000)
    assert await post_events(client, auth, campaign_id, "busy3:", [fourth]) == [("rejected", "CONFLICT")]


async def test_event_times_keep_their_millisecond(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """started_at and completed_at are the events' own times, to the millisecond."""
    campaign_id = await new_campaign(client, auth, max_attempts=1, retry_on=[])
    oracle = CampaignOracle(1, frozenset())
    await add_contacts(client, auth, campaign_id, [phone_of(9)], oracle)
    at = epoch_ms("2021-02-06T12:32:03.799Z")
    started = Event("s", phone_of(9), "c", "call.started", at)
    ended = Event("e", phone_of(9), "c", "call.ended", at + 1000, "no_answer")
    await post_events(client, auth, campaign_id, "ms:", [started, ended])
    response = await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)
    data = response.json()["data"]
    assert (data["started_at"], data["completed_at"]) == (
        "2021-02-06T12:32:03.799Z",
        "2021-02-06T12:32:04.799Z",
    )


def test_oracle_reproduces_the_seed_example() -> None:
    """The oracle itself: the seed's example built from events gives the seed's numbers."""
    oracle = CampaignOracle(3, frozenset({"voicemail"}))
    plan = ["answered"] * 750 + ["busy"] * 80 + ["no_answer"] * 50 + ["failed"] * 20 + ["voicemail"] * 100
    phones = [f"+1415555{n:04d}" for n in range(1000)]
    oracle.add_contacts(phones)
    for n, (phone, outcome) in enumerate(zip(phones, plan, strict=True)):
        duration = 245 if outcome == "answered" else 0
        assert oracle.deliver(Event(f"s{n}", phone, f"c{n}", "call.started", BASE_MS)) == ("applied", None)
        ended = Event(f"e{n}", phone, f"c{n}", "call.ended", BASE_MS + 1, outcome, duration)
        assert oracle.deliver(ended) == ("applied", None)
        if outcome == "voicemail" and n % 2 == 0:
            oracle.deliver(Event(f"r{n}", phone, f"c{n}-2", "call.started", BASE_MS + 2))
    names = SEED_FIELDS[2:-2]  # the counts; the oracle gives times as epoch ms
    expected = {**{k: SEED_EXAMPLE[k] for k in names}, "started_at": BASE_MS, "completed_at": None}
    assert oracle.stats() == expected


async def two_campaigns(
    client: httpx.AsyncClient, auth: dict[str, str], phones: list[str]
) -> tuple[list[str], list[CampaignOracle]]:
    """Two campaigns of one account holding the same phones; their ids and oracles."""
    ids, oracles = [], []
    for _ in range(2):
        campaign_id = await new_campaign(client, auth, max_attempts=2, retry_on=["busy"])
        oracle = CampaignOracle(2, frozenset({"busy"}))
        await add_contacts(client, auth, campaign_id, phones, oracle)
        ids.append(campaign_id)
        oracles.append(oracle)
    return ids, oracles


async def test_one_request_for_two_campaigns_counts_each_apart(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """Events of two campaigns (same phones) in one request move each campaign's numbers only."""
    phones = [phone_of(1), phone_of(2)]
    (first, second), (first_oracle, second_oracle) = await two_campaigns(client, auth, phones)
    plan = [
        (first, first_oracle, Event("a", phones[0], "a", "call.ended", BASE_MS, "answered", 30)),
        (second, second_oracle, Event("b", phones[0], "b", "call.ended", BASE_MS + 1, "busy")),
        (second, second_oracle, Event("c", phones[1], "c", "call.started", BASE_MS + 2)),
        (first, first_oracle, Event("d", phones[1], "d", "call.ended", BASE_MS + 3, "no_answer")),
    ]
    body = {"events": [e.body(cid, "two:") for cid, _, e in plan]}
    response = await client.post("/recordCallEvents", json=body, headers=auth)
    assert response.json()["data"]["applied"] == len(plan)
    for _, oracle, ev in plan:
        oracle.deliver(ev)
    a = await assert_stats(client, auth, app, first, first_oracle)
    b = await assert_stats(client, auth, app, second, second_oracle)
    assert (a["calls_completed"], a["calls_failed"], b["calls_pending"], b["calls_in_progress"]) == (
        1,
        1,
        1,
        1,
    )


async def test_contact_id_of_another_campaign_is_not_found(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """An event naming, by contact_id, a contact of another campaign is refused and moves nothing."""
    (first, second), (first_oracle, second_oracle) = await two_campaigns(client, auth, [phone_of(3)])
    with app.db.read() as conn:
        foreign_id = conn.execute(select(contacts.c.id).where(contacts.c.campaign_id == second)).scalar_one()
    body = Event("x", phone_of(3), "x", "call.started", BASE_MS).body(first, "cid:")
    del body["phone"]
    response = await client.post(
        "/recordCallEvents", json={"events": [{**body, "contact_id": foreign_id}]}, headers=auth
    )
    result = response.json()["data"]["results"][0]
    assert (result["status"], result["error"]) == ("rejected", "NOT_FOUND")
    await assert_stats(client, auth, app, first, first_oracle)
    await assert_stats(client, auth, app, second, second_oracle)


async def test_event_ids_belong_to_their_account(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, make_key: Callable[..., str]
) -> None:
    """Two accounts using the same event and call ids: each is applied in its own account."""
    other = {"x-api-key": make_key(account="globex")}
    for headers in (auth, other):
        campaign_id = await new_campaign(client, headers, max_attempts=1, retry_on=[])
        oracle = CampaignOracle(1, frozenset())
        await add_contacts(client, headers, campaign_id, [phone_of(4)], oracle)
        ev = Event("shared", phone_of(4), "shared-call", "call.ended", BASE_MS, "answered", 12)
        assert await post_events(client, headers, campaign_id, "", [ev]) == [oracle.deliver(ev)]
        assert (await assert_stats(client, headers, app, campaign_id, oracle))["calls_completed"] == 1
