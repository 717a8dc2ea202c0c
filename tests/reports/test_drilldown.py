"""getContacts, getContact and getCalls against the oracle: random campaigns and event streams, every
filter's contacts equal to the oracle's and counting exactly the stats figure, pages that return each
row once while events keep arriving, and the refusals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import new_campaign
from tests.envelope import assert_error
from tests.factories import add, ended_call, record, started_call
from tests.oracle import OUTCOMES, DrawChooser, epoch_ms, phone_of
from tests.reports.helpers import (
    STATES,
    all_pages,
    api_call_view,
    api_contact_view,
    call_view,
    contact_view,
    matching,
    page_of,
    random_campaign,
)

EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(data=st.data())
async def test_every_filter_lists_the_oracles_contacts_and_the_stats_figure(
    client: httpx.AsyncClient, auth: dict[str, str], data: st.DataObject
) -> None:
    """After a random stream: each state and last outcome (and pairs of them) lists exactly the contacts
    the oracle holds there, as many as getCampaignStats counts; getCalls lists the oracle's calls."""
    chooser = DrawChooser(data)
    numbers = data.draw(st.lists(st.integers(0, 998), min_size=1, max_size=12, unique=True))
    campaign = await random_campaign(client, auth, chooser, numbers)
    await campaign.deliver(client, auth, len(campaign.requests))
    path = f"/getContacts/{campaign.campaign_id}"
    limit = chooser.integer(1, 5)
    expected = contact_view(campaign.oracle)
    everyone = await all_pages(client, auth, path, {}, limit)
    assert api_contact_view(everyone) == expected
    assert [r["contact_id"] for r in everyone] == sorted(r["contact_id"] for r in everyone)

    stats = (await client.get(f"/getCampaignStats/{campaign.campaign_id}", headers=auth)).json()["data"]
    for state in STATES:
        listed = api_contact_view(await all_pages(client, auth, path, {"state": state}, limit))
        assert set(listed) == matching(expected, state, None)
        assert len(listed) == stats[f"calls_{state}"]
    for outcome in OUTCOMES:
        listed = api_contact_view(await all_pages(client, auth, path, {"last_outcome": outcome}, limit))
        assert set(listed) == matching(expected, None, outcome)
        assert len(listed) == stats["call_status_breakdown"][outcome]
    state, outcome = data.draw(st.sampled_from(STATES)), data.draw(st.sampled_from(OUTCOMES))
    both = await all_pages(client, auth, path, {"state": state, "last_outcome": outcome}, limit)
    assert set(api_contact_view(both)) == matching(expected, state, outcome)

    calls = await all_pages(client, auth, f"/getCalls/{campaign.campaign_id}", {}, limit)
    assert api_call_view(calls) == call_view(campaign.oracle, campaign.prefix)
    outcome = data.draw(st.sampled_from(OUTCOMES))
    ended = await all_pages(client, auth, f"/getCalls/{campaign.campaign_id}", {"outcome": outcome}, limit)
    assert api_call_view(ended) == [c for c in call_view(campaign.oracle, campaign.prefix) if c[3] == outcome]


@EXAMPLES
@given(data=st.data())
async def test_pages_return_every_row_once_while_events_arrive(
    client: httpx.AsyncClient, auth: dict[str, str], data: st.DataObject
) -> None:
    """Events (and new contacts) written between page fetches: the whole list returns every contact once
    and those added meanwhile at most once; a filtered list every contact that matched all along, none
    twice; getCalls every call whose start stayed put exactly once."""
    chooser = DrawChooser(data)
    numbers = data.draw(st.lists(st.integers(0, 500), min_size=2, max_size=14, unique=True))
    campaign = await random_campaign(client, auth, chooser, numbers)
    await campaign.deliver(client, auth, len(campaign.requests) // 2)
    state = data.draw(st.sampled_from(STATES))
    views = [contact_view(campaign.oracle)]
    starts = [{campaign.prefix + c: call.started_at for c, call in campaign.oracle.calls.items()}]
    listed: dict[str, list[str]] = {"all": [], "state": [], "calls": []}
    cursors: dict[str, str | None] = dict.fromkeys(listed)
    routes = {
        "all": (f"/getContacts/{campaign.campaign_id}", {}),
        "state": (f"/getContacts/{campaign.campaign_id}", {"state": state}),
        "calls": (f"/getCalls/{campaign.campaign_id}", {}),
    }
    late = 600
    pending = set(listed)
    while pending:
        for name in sorted(pending):
            path, params = routes[name]
            cursor = cursors[name]
            page, cursors[name] = await page_of(
                client, auth, path, {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            )
            listed[name] += [row["call_id"] if name == "calls" else row["phone"] for row in page]
            if cursors[name] is None:
                pending.discard(name)
        await campaign.deliver(client, auth)
        if chooser.integer(0, 3) == 0:
            await add(client, auth, campaign.campaign_id, json={"contacts": [{"phone": phone_of(late)}]})
            campaign.oracle.add_contacts([phone_of(late)])
            late += 1
        views.append(contact_view(campaign.oracle))
        starts.append({campaign.prefix + c: call.started_at for c, call in campaign.oracle.calls.items()})

    first = views[0]
    assert Counter(listed["all"]) == Counter([*first, *(set(listed["all"]) - set(first))])
    assert set(listed["all"]) <= set(views[-1])
    always = set.intersection(*(matching(view, state, None) for view in views))
    assert always <= set(listed["state"]) and len(set(listed["state"])) == len(listed["state"])
    steady = {c for c, at in starts[0].items() if all(s.get(c) == at for s in starts)}
    counted = Counter(listed["calls"])
    assert all(counted[c] == 1 for c in steady), (steady, counted)
    moved = {c for c in counted if counted[c] > 1}
    assert not moved - {c for c in starts[-1] if c not in steady}


async def test_get_contact_shows_its_calls_in_attempt_order(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A contact retried twice: its three calls with their times, outcomes and talk time, attempt by
    attempt; its last_outcome is the latest finished call's while a retry is live."""
    campaign_id = await new_campaign(client, auth, max_attempts=3, retry_on=["busy", "no_answer"])
    phone = "+14155550123"
    await add(
        client,
        auth,
        campaign_id,
        json={"contacts": [{"phone": phone, "name": "Ada", "metadata": {"crm": "42"}}]},
    )
    await record(
        client,
        auth,
        ended_call(campaign_id, phone, "a1", "busy", at="2024-01-16T09:01:00Z"),
        started_call(campaign_id, phone, "a2", at="2024-01-16T10:00:00Z"),
        ended_call(campaign_id, phone, "a2", "no_answer", at="2024-01-16T10:00:30Z"),
        started_call(campaign_id, phone, "a3", at="2024-01-16T11:00:00Z"),
    )
    rows, _ = await page_of(client, auth, f"/getContacts/{campaign_id}", {"phone": "(415) 555-0123"})
    assert len(rows) == 1
    contact = rows[0]
    assert (contact["state"], contact["attempts"], contact["last_outcome"]) == ("in_progress", 3, "no_answer")
    assert (contact["name"], contact["metadata"], contact["last_call_at"]) == (
        "Ada",
        {"crm": "42"},
        "2024-01-16T11:00:00Z",
    )
    response = await client.get(f"/getContact/{campaign_id}/{contact['contact_id']}", headers=auth)
    assert response.status_code == 200, response.text
    detail = response.json()["data"]
    assert {k: v for k, v in detail.items() if k != "calls"} == contact
    shown = [
        (c["call_id"], c["attempt"], c["started_at"], c["ended_at"], c["outcome"]) for c in detail["calls"]
    ]
    assert shown == [
        ("a1", 1, "2024-01-16T09:01:00Z", "2024-01-16T09:01:00Z", "busy"),
        ("a2", 2, "2024-01-16T10:00:00Z", "2024-01-16T10:00:30Z", "no_answer"),
        ("a3", 3, "2024-01-16T11:00:00Z", None, None),
    ]
    assert [c["duration_seconds"] for c in detail["calls"]] == [0, 0, None]
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert stats["call_status_breakdown"]["no_answer"] == 1 and stats["calls_in_progress"] == 1


async def test_get_calls_takes_a_half_open_time_range(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """from is in, to is out; newest first; a time without offset is UTC; from not before to is a 400."""
    campaign_id = await new_campaign(client, auth)
    phones = [f"+1415555020{i}" for i in range(4)]
    await add(client, auth, campaign_id, json={"contacts": [{"phone": p} for p in phones]})
    times = ["2024-01-16T09:00:00Z", "2024-01-16T10:00:00Z", "2024-01-16T10:00:00Z", "2024-01-16T11:00:00Z"]
    await record(
        client,
        auth,
        *(
            started_call(campaign_id, p, f"c{i}", at=t)
            for i, (p, t) in enumerate(zip(phones, times, strict=True))
        ),
    )
    path = f"/getCalls/{campaign_id}"
    window = await all_pages(
        client, auth, path, {"from": "2024-01-16T10:00:00Z", "to": "2024-01-16T11:00:00"}, 1
    )
    assert [c["call_id"] for c in window] == ["c2", "c1"]
    everything = await all_pages(client, auth, path, {}, 3)
    assert [c["call_id"] for c in everything] == ["c3", "c2", "c1", "c0"]
    assert [epoch_ms(c["started_at"]) for c in everything] == sorted(
        (epoch_ms(t) for t in times), reverse=True
    )
    bad = await client.get(
        path, params={"from": "2024-01-16T11:00:00Z", "to": "2024-01-16T10:00:00Z"}, headers=auth
    )
    assert_error(bad, 400, "VALIDATION_ERROR", names="from")
    bad = await client.get(path, params={"from": "yesterday"}, headers=auth)
    assert_error(bad, 400, "VALIDATION_ERROR", names="from")


async def test_refusals(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Unknown filter values name the allowed ones; limits outside 1-1000, foreign cursors and phones
    addContacts refuses are 400; another account's campaign and an unknown contact are 404."""
    campaign_id = await new_campaign(client, auth)
    await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550300"}]})
    contacts = f"/getContacts/{campaign_id}"
    bad = await client.get(contacts, params={"state": "done"}, headers=auth)
    assert_error(bad, 400, "VALIDATION_ERROR", names="state")
    assert all(s in bad.json()["message"] for s in STATES)
    bad = await client.get(contacts, params={"last_outcome": "hung_up"}, headers=auth)
    assert_error(bad, 400, "VALIDATION_ERROR", names="last_outcome")
    assert all(o in bad.json()["message"] for o in OUTCOMES)
    bad = await client.get(f"/getCalls/{campaign_id}", params={"outcome": "x"}, headers=auth)
    assert_error(bad, 400, "VALIDATION_ERROR", names="outcome")
    for limit in ("0", "1001", "-1", "1.5"):
        assert_error(
            await client.get(contacts, params={"limit": limit}, headers=auth), 400, "VALIDATION_ERROR"
        )
    assert (await client.get(contacts, params={"limit": "1000"}, headers=auth)).status_code == 200
    assert_error(await client.get(contacts, params={"cursor": "%%%"}, headers=auth), 400, "VALIDATION_ERROR")
    bad = await client.get(contacts, params={"phone": "12"}, headers=auth)
    assert_error(bad, 400, "VALIDATION_ERROR", names="phone")

    other = {"x-api-key": make_key("globex", "read")}
    for path in (contacts, f"/getCalls/{campaign_id}", f"/getContact/{campaign_id}/1"):
        assert_error(await client.get(path, headers=other), 404, "NOT_FOUND")
        assert_error(await client.get(path), 401, "UNAUTHORIZED")
    assert_error(await client.get(f"/getContact/{campaign_id}/999999", headers=auth), 404, "NOT_FOUND")
    assert_error(await client.get(f"/getContact/{campaign_id}/abc", headers=auth), 400, "VALIDATION_ERROR")


async def test_a_phone_in_any_form_finds_its_contact(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """The phone filter reads a number as addContacts does, in the campaign's default region."""
    campaign_id = await new_campaign(client, auth, default_region="GB")
    await add(
        client, auth, campaign_id, json={"contacts": [{"phone": "020 7946 0018"}, {"phone": "+14155550199"}]}
    )
    for form in ("+44 20 7946 0018", "020 7946 0018", "(020) 7946-0018"):
        rows, _ = await page_of(client, auth, f"/getContacts/{campaign_id}", {"phone": form})
        assert [r["phone"] for r in rows] == ["+442079460018"], form
    rows, _ = await page_of(client, auth, f"/getContacts/{campaign_id}", {"phone": "+14155550198"})
    assert rows == []
