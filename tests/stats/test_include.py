"""getCampaignStats?include=attempts,durations: the seed's shape without it, raw-row truth with it.

Attempt counts are checked against the raw `calls` and `contacts` rows, and the
talk-time percentiles against exact nearest-rank percentiles of the answered
calls' durations: exact <= reported <= exact * 1.05, and exact below 20 s.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from callstats.app import CallstatsApp
from callstats.core.histogram import percentile, talk_bucket
from tests.conftest import new_campaign
from tests.factories import ended_call
from tests.oracle import BASE_MS, OUTCOMES, Rules, batches, interleave, phone_of, simulate_contact
from tests.seed import SEED_FIELDS

DURATION_FIELDS = ["answered_calls", "p50", "p90", "p99", "percentile_error_bound", "histogram"]
BOUND = 0.05
PER_BACKEND = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Talk times a campaign really has, plus the exact-region edge and the longest allowed (7 days).
DURATIONS = st.one_of(
    st.integers(0, 25),
    st.integers(20, 1_200),
    st.integers(0, 7 * 86_400),
    st.sampled_from([19, 20, 21, 604_800]),
)


class SeededChooser:
    """The simulation's choices from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return self.rng.randint(low, high)


def exact_percentile(durations: list[int], p: int) -> int:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(durations)
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


def assert_within_bound(reported: int, exact: int) -> None:
    """Never below the exact value, at most 5% above it, and exact under 20 s."""
    assert exact <= reported, (reported, exact)
    assert reported * 100 <= exact * 105, (reported, exact)  # integers: no float rounding at the bound
    if exact < 20:
        assert reported == exact


async def get_stats(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, include: str | None = None
) -> httpx.Response:
    """A getCampaignStats response (200 asserted by the callers that need it)."""
    params = {"include": include} if include is not None else None
    return await client.get(f"/getCampaignStats/{campaign_id}", params=params, headers=auth)


async def included(client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> dict[str, Any]:
    """The data of getCampaignStats?include=attempts,durations."""
    response = await get_stats(client, auth, campaign_id, "attempts,durations")
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def add_phones(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, count: int
) -> list[str]:
    """Add `count` contacts; their phones."""
    phones = [phone_of(n) for n in range(count)]
    body = {"contacts": [{"phone": p} for p in phones]}
    response = await client.post(f"/addContacts/{campaign_id}", json=body, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["accepted"] == count
    return phones


async def post(
    client: httpx.AsyncClient, auth: dict[str, str], events: list[dict[str, Any]]
) -> dict[str, Any]:
    """Deliver events in requests of at most 1,000; the summed counts."""
    tally: Counter[str] = Counter()
    for start in range(0, len(events), 1000):
        response = await client.post(
            "/recordCallEvents", json={"events": events[start : start + 1000]}, headers=auth
        )
        assert response.status_code == 200, response.text
        tally.update({k: response.json()["data"][k] for k in ("applied", "duplicate", "rejected")})
    return dict(tally)


def ended(campaign_id: str, phone: str, call_id: str, outcome: str, duration: int, n: int) -> dict[str, Any]:
    """A call.ended event (which starts the call when it was never seen)."""
    at = f"2024-01-16T{10 + n // 3600 % 12:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    return ended_call(campaign_id, phone, call_id, outcome, duration, at, event_id=f"{call_id}-e")


@pytest.fixture
async def busy_campaign(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    """A campaign with retries, live calls, pending contacts and every outcome (a fixed random stream)."""
    chooser = SeededChooser(20240116)
    rules = Rules(3, frozenset({"busy", "no_answer", "voicemail"}))
    campaign_id = await new_campaign(client, auth, max_attempts=3, retry_on=sorted(rules.retry_on))
    phones = await add_phones(client, auth, campaign_id, 40)
    streams = [
        simulate_contact(chooser, f"k{i}", phone, rules, BASE_MS + chooser.integer(0, 3_600_000))
        for i, phone in enumerate(phones)
    ]
    stream = interleave(chooser, streams)
    prefix = f"{uuid.uuid4().hex[:8]}:"
    for request in batches(chooser, stream, 25):
        await post(client, auth, [e.body(campaign_id, prefix) for e in request])
    return campaign_id


def raw_rows(app: CallstatsApp, campaign_id: str) -> tuple[list[tuple[Any, ...]], list[int]]:
    """(status, outcome, duration_seconds) of every call, and every contact's attempt count."""
    with app.db.read() as conn:
        calls = conn.execute(
            text("SELECT status, outcome, duration_seconds FROM calls WHERE campaign_id = :c"),
            {"c": campaign_id},
        ).all()
        attempts = conn.execute(
            text("SELECT attempts FROM contacts WHERE campaign_id = :c"), {"c": campaign_id}
        ).all()
    return [tuple(row) for row in calls], [int(row[0]) for row in attempts]


# -- the seed's shape ----------------------------------------------------------------------------


async def test_without_include_the_body_is_the_seeds(
    client: httpx.AsyncClient, auth: dict[str, str], busy_campaign: str
) -> None:
    """Exactly the seed's 13 fields in its order; an empty include changes nothing, byte for byte."""
    plain = await get_stats(client, auth, busy_campaign)
    assert plain.status_code == 200
    body = plain.json()
    assert list(body) == ["success", "data"]
    assert list(body["data"]) == SEED_FIELDS
    assert list(body["data"]["call_status_breakdown"]) == list(OUTCOMES)
    for empty in ("", ",", " "):
        same = await get_stats(client, auth, busy_campaign, empty)
        assert same.status_code == 200
        assert same.content == plain.content
        assert same.headers["etag"] == plain.headers["etag"]


@pytest.mark.parametrize(
    ("include", "sections"),
    [
        ("attempts", ["attempts"]),
        ("durations", ["durations"]),
        ("attempts,durations", ["attempts", "durations"]),
        ("durations,attempts", ["attempts", "durations"]),
        (" attempts , durations ", ["attempts", "durations"]),
        ("attempts,attempts", ["attempts"]),
    ],
)
async def test_include_adds_only_the_sections_asked_for(
    client: httpx.AsyncClient, auth: dict[str, str], busy_campaign: str, include: str, sections: list[str]
) -> None:
    """The seed's fields are unchanged and come first; each asked section follows, nothing else."""
    plain = (await get_stats(client, auth, busy_campaign)).json()["data"]
    response = await get_stats(client, auth, busy_campaign, include)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert list(data) == SEED_FIELDS + sections
    assert {k: data[k] for k in SEED_FIELDS} == plain
    if "attempts" in sections:
        assert list(data["attempts"]) == ["total", "by_outcome", "per_contact"]
        assert list(data["attempts"]["by_outcome"]) == list(OUTCOMES)
    if "durations" in sections:
        assert list(data["durations"]) == DURATION_FIELDS
        assert data["durations"]["percentile_error_bound"] == BOUND


async def test_include_given_twice_merges(
    client: httpx.AsyncClient, auth: dict[str, str], busy_campaign: str
) -> None:
    """?include=attempts&include=durations is the same as ?include=attempts,durations."""
    url = f"/getCampaignStats/{busy_campaign}?include=attempts&include=durations"
    twice = await client.get(url, headers=auth)
    once = await get_stats(client, auth, busy_campaign, "attempts,durations")
    assert twice.status_code == 200
    assert twice.content == once.content


@pytest.mark.parametrize(
    "include", ["bogus", "attempts,bogus", "Attempts", "timeseries", "attempts;durations"]
)
async def test_unknown_include_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], busy_campaign: str, include: str
) -> None:
    """An unknown section is a 400 VALIDATION_ERROR naming `include`."""
    response = await get_stats(client, auth, busy_campaign, include)
    assert response.status_code == 400
    body = response.json()
    assert (body["success"], body["error"]) == (False, "VALIDATION_ERROR")
    assert "include" in body["message"]


async def test_include_on_another_accounts_campaign_is_404(
    client: httpx.AsyncClient, auth: dict[str, str], busy_campaign: str, make_key: Any
) -> None:
    """include reveals nothing about other accounts' campaigns."""
    stranger = {"x-api-key": make_key(account="globex", scope="read")}
    response = await get_stats(client, stranger, busy_campaign, "attempts,durations")
    assert (response.status_code, response.json()["error"]) == (404, "NOT_FOUND")


# -- attempts ------------------------------------------------------------------------------------


async def test_attempts_equal_the_raw_rows(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, busy_campaign: str
) -> None:
    """total = call rows; by_outcome = ended calls by outcome; per_contact = contacts by attempts made."""
    data = await included(client, auth, busy_campaign)
    calls, attempts = raw_rows(app, busy_campaign)
    section = data["attempts"]
    assert section["total"] == len(calls) > 40
    by_outcome = Counter(outcome for status, outcome, _ in calls if status == "ended")
    assert section["by_outcome"] == {o: by_outcome[o] for o in OUTCOMES}
    assert all(section["by_outcome"][o] > 0 for o in OUTCOMES)
    per_contact = Counter(attempts)
    assert section["per_contact"] == [
        {"attempts": k, "contacts": per_contact[k]} for k in sorted(per_contact)
    ]
    assert sum(row["contacts"] for row in section["per_contact"]) == data["total_contacts"]
    assert len(section["per_contact"]) >= 3
    assert section["by_outcome"]["answered"] == data["calls_completed"]


async def test_attempts_of_an_empty_campaign(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """No contacts: zero attempts and an empty histogram; contacts not yet dialed count under 0 attempts."""
    campaign_id = await new_campaign(client, auth)
    data = await included(client, auth, campaign_id)
    assert data["attempts"] == {"total": 0, "by_outcome": dict.fromkeys(OUTCOMES, 0), "per_contact": []}
    assert data["durations"] == {
        "answered_calls": 0,
        "p50": 0,
        "p90": 0,
        "p99": 0,
        "percentile_error_bound": BOUND,
        "histogram": [],
    }
    await add_phones(client, auth, campaign_id, 3)
    data = await included(client, auth, campaign_id)
    assert data["attempts"]["per_contact"] == [{"attempts": 0, "contacts": 3}]


# -- durations -----------------------------------------------------------------------------------


def assert_durations_match(section: dict[str, Any], durations: list[int]) -> None:
    """Percentiles within the bound of the exact ones; the histogram counts every answered call once."""
    assert section["answered_calls"] == len(durations)
    for p in (50, 90, 99):
        assert_within_bound(section[f"p{p}"], exact_percentile(durations, p))
    edges = [row["le"] for row in section["histogram"]]
    assert edges == sorted(set(edges))
    assert all(row["count"] > 0 for row in section["histogram"])
    seen = 0
    for row in section["histogram"]:  # cumulative counts: every edge splits the raw durations right
        seen += row["count"]
        assert seen == sum(1 for d in durations if d <= row["le"]), row
    assert seen == len(durations)


async def test_durations_of_the_busy_campaign(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, busy_campaign: str
) -> None:
    """p50/p90/p99 of answered calls only (voicemail talk time is not talk time)."""
    data = await included(client, auth, busy_campaign)
    calls, _ = raw_rows(app, busy_campaign)
    answered = [int(d or 0) for status, outcome, d in calls if status == "ended" and outcome == "answered"]
    assert len(answered) >= 5
    assert_durations_match(data["durations"], answered)
    assert sum(answered) == data["total_call_duration"]


async def test_durations_one_to_a_thousand(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Talk times 1..1000 s: exact p50 = 500, p90 = 900, p99 = 990; reported at their bucket's upper edge."""
    campaign_id = await new_campaign(client, auth, max_attempts=1, retry_on=[])
    phones = await add_phones(client, auth, campaign_id, 1000)
    events = [ended(campaign_id, phone, f"c{n}", "answered", n + 1, n) for n, phone in enumerate(phones)]
    assert (await post(client, auth, events))["applied"] == 1000
    section = (await included(client, auth, campaign_id))["durations"]
    for p, exact in ((50, 500), (90, 900), (99, 990)):
        assert exact_percentile(list(range(1, 1001)), p) == exact
        assert_within_bound(section[f"p{p}"], exact)
    assert_durations_match(section, list(range(1, 1001)))
    assert [row["le"] for row in section["histogram"][:20]] == [*range(1, 20), 21]


@PER_BACKEND
@given(
    talk=st.lists(DURATIONS, min_size=1, max_size=40),
    voicemail=st.lists(st.integers(0, 5_000), max_size=5),
)
async def test_random_durations_stay_within_the_bound(
    client: httpx.AsyncClient, auth: dict[str, str], talk: list[int], voicemail: list[int]
) -> None:
    """Random answered talk times (and voicemails that must not count): every percentile within 5%."""
    campaign_id = await new_campaign(client, auth, max_attempts=1, retry_on=[])
    phones = await add_phones(client, auth, campaign_id, len(talk) + len(voicemail))
    outcomes = [("answered", d) for d in talk] + [("voicemail", d) for d in voicemail]
    events = [
        ended(campaign_id, phone, f"{campaign_id[:8]}-{n}", outcome, duration, n)
        for n, (phone, (outcome, duration)) in enumerate(zip(phones, outcomes, strict=True))
    ]
    assert (await post(client, auth, events))["applied"] == len(events)
    data = await included(client, auth, campaign_id)
    assert_durations_match(data["durations"], talk)
    assert data["total_call_duration"] == sum(talk)
    assert data["attempts"]["by_outcome"]["voicemail"] == len(voicemail)


@settings(max_examples=500, deadline=None)
@given(talk=st.lists(DURATIONS, min_size=1, max_size=300), p=st.integers(1, 100))
def test_percentile_from_buckets_is_within_the_bound(talk: list[int], p: int) -> None:
    """The pure rule, any p: the nearest-rank bucket's upper edge, never below, at most 5% above."""
    counts = Counter(talk_bucket(d) for d in talk)
    assert_within_bound(percentile(counts, p), exact_percentile(talk, p))


def test_bucket_edges_give_the_documented_bound() -> None:
    """Every second below 20 s has its own bucket; each edge is at most 5% above any value in it."""
    for seconds in range(20):
        assert percentile({talk_bucket(seconds): 1}, 50) == seconds
    for seconds in range(0, 7 * 86_400 + 1, 97):
        edge = percentile({talk_bucket(seconds): 1}, 50)
        assert_within_bound(edge, seconds)


# -- ETag ----------------------------------------------------------------------------------------


async def test_etag_differs_with_include_and_revalidates(
    client: httpx.AsyncClient, auth: dict[str, str], busy_campaign: str
) -> None:
    """Each shape has its own ETag; If-None-Match gives 304 until the numbers change."""
    tags = {}
    for include in (None, "attempts", "durations", "attempts,durations"):
        response = await get_stats(client, auth, busy_campaign, include)
        assert response.status_code == 200
        tags[include] = response.headers["etag"]
    assert len(set(tags.values())) == 4
    both = tags["attempts,durations"]
    url = f"/getCampaignStats/{busy_campaign}"
    revalidated = await client.get(
        url, params={"include": "attempts,durations"}, headers={**auth, "If-None-Match": both}
    )
    assert (revalidated.status_code, revalidated.content) == (304, b"")
    crossed = await client.get(url, headers={**auth, "If-None-Match": both})
    assert crossed.status_code == 200  # the plain shape never matches the include shape's tag
    added = await client.post(
        f"/addContacts/{busy_campaign}", json={"contacts": [{"phone": phone_of(999)}]}, headers=auth
    )
    assert added.json()["data"]["accepted"] == 1  # one more contact with 0 attempts: per_contact changes
    changed = await client.get(
        url, params={"include": "attempts"}, headers={**auth, "If-None-Match": tags["attempts"]}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != tags["attempts"]
