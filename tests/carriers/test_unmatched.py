"""Acceptance: callbacks callstats cannot apply are kept, answered 2xx, listed by getUnmatchedCallbacks
(per connection, one page at a time, without duplicates or gaps), still there after a restart, and
replayed by replayCallback once their cause is fixed; a replay never counts twice. A connection reaches
its own account's campaigns only. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callstats.accounts.service import create_key
from callstats.config import Settings
from callstats.db.schema import carrier_callbacks
from tests.apps import serving
from tests.carriers.webhook_kit import (
    T0,
    Callback,
    Hooked,
    connect,
    create_campaign,
    deliver,
    hooked,
    json_body,
    keyed,
    numbers,
    phone,
    planned_call,
    retell_signature,
    row_count,
    stored_verdicts,
)
from tests.envelope import assert_error

PHONES = [phone(0), phone(1)]
STRANGER = phone(99)  # a number in no campaign


def twilio_callback(call_id: str, to: str, status: str, **extra: str) -> Callback:
    """A Twilio status callback of one call (Timestamp set, so a redelivery is the same body)."""
    params = {
        "CallSid": call_id,
        "To": to,
        "CallStatus": status,
        "Timestamp": "Tue, 16 Jan 2024 09:00:00 +0000",
        **extra,
    }
    return Callback(call_id, status, params)


async def deliver_to(hook: Hooked, connection_id: str, callback: Callback) -> httpx.Response:
    """`callback` to another Twilio connection of the same secret, for the hook's campaign."""
    other = Hooked(
        hook.app, hook.http, hook.auth, hook.campaign_id, hook.provider, connection_id, hook.secret
    )
    return await deliver(other, callback)


async def unmatched_page(
    http: httpx.AsyncClient, auth: dict[str, str], **query: Any
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of getUnmatchedCallbacks: its callbacks and its next cursor."""
    response = await http.get("/getUnmatchedCallbacks", params=query, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["pagination"]["limit"] == query.get("limit", 50)
    return body["data"], body["pagination"]["next_cursor"]


async def every_page(
    http: httpx.AsyncClient, auth: dict[str, str], **query: Any
) -> list[list[dict[str, Any]]]:
    """Every page, following next_cursor until it is null."""
    pages = []
    cursor = None
    while True:
        page, cursor = await unmatched_page(http, auth, **query, **({"cursor": cursor} if cursor else {}))
        pages.append(page)
        if cursor is None:
            return pages
        assert len(pages) < 50


async def replay(hook: Hooked, callback_id: str, auth: dict[str, str] | None = None) -> httpx.Response:
    return await hook.http.post(f"/replayCallback/{callback_id}", headers=auth or hook.auth)


async def test_unmatched_are_listed_per_connection_page_by_page(settings: Settings) -> None:
    """Twelve unmatched callbacks over two connections among applied ones: all listed newest first,
    a connection_id keeps its own, every page size walks them all exactly once; another account's
    are not shown."""
    async with hooked(settings, "twilio", PHONES) as hook:
        second = await connect(hook.http, hook.auth, "twilio")
        for n in range(7):  # an unknown status: unmatched on the first connection
            sent = await deliver(hook, twilio_callback(f"CA-odd-{n}", PHONES[0], f"on-hold-{n}"))
            assert sent.status_code == 204
        for n in range(5):  # a number not in the campaign: unmatched on the second
            sent = await deliver_to(hook, second, twilio_callback(f"CA-who-{n}", STRANGER, "initiated"))
            assert sent.status_code == 204
        assert (await deliver(hook, twilio_callback("CA-ok", PHONES[1], "initiated"))).status_code == 204
        other_auth = {"x-api-key": create_key(hook.app.db, "globex", "write").plaintext}
        other_campaign = await create_campaign(hook.http, other_auth, [])
        other_connection = await connect(hook.http, other_auth, "twilio")
        globex = Hooked(
            hook.app, hook.http, other_auth, other_campaign, "twilio", other_connection, hook.secret
        )
        assert (await deliver(globex, twilio_callback("CA-g", STRANGER, "ringing"))).status_code == 204

        (listed,) = await every_page(hook.http, hook.auth, limit=50)
        assert len(listed) == 12
        # as instants: ISO strings with and without milliseconds ("…:30Z", "…:30.002Z") do not sort as text
        received = [datetime.fromisoformat(item["received_at"]) for item in listed]
        assert received == sorted(received, reverse=True)
        assert {item["call_id"] for item in listed} == {f"CA-odd-{n}" for n in range(7)} | {
            f"CA-who-{n}" for n in range(5)
        }
        odd = next(item for item in listed if item["call_id"] == "CA-odd-3")
        assert odd["reason"] == "unknown CallStatus 'on-hold-3'"
        assert odd["provider"] == "twilio" and odd["connection_id"] == hook.connection_id
        assert odd["campaign_id"] == hook.campaign_id and odd["query"] == f"campaign_id={hook.campaign_id}"
        assert "CallStatus=on-hold-3" in odd["body"]
        who = next(item for item in listed if item["call_id"] == "CA-who-0")
        assert who["reason"] == "no such contact in this campaign" and who["connection_id"] == second

        for connection_id, count in ((hook.connection_id, 7), (second, 5)):
            (own,) = await every_page(hook.http, hook.auth, connection_id=connection_id)
            assert len(own) == count and {item["connection_id"] for item in own} == {connection_id}
        for limit in (1, 3, 5, 12, 13):
            pages = await every_page(hook.http, hook.auth, limit=limit)
            assert [len(page) for page in pages[:-1]] == [limit] * (len(pages) - 1)
            walked = [item["callback_id"] for page in pages for item in page]
            assert walked == [item["callback_id"] for item in listed]
        pages = await every_page(hook.http, hook.auth, limit=2, connection_id=second)
        assert [len(page) for page in pages] == [2, 2, 1]

        (theirs,) = await every_page(hook.http, other_auth)
        assert [item["call_id"] for item in theirs] == ["CA-g"]


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": 201}, {"limit": "x"}, {"cursor": "not-a-cursor"}, {"connection_id": "nope"}],
)
async def test_bad_list_parameters_are_a_400(settings: Settings, query: dict[str, Any]) -> None:
    async with hooked(settings, "twilio", PHONES) as hook:
        response = await hook.http.get("/getUnmatchedCallbacks", params=query, headers=hook.auth)
        assert_error(response, 400, "VALIDATION_ERROR")


async def test_unmatched_survive_a_restart_and_replay_there(settings: Settings) -> None:
    """A new app on the same database (file or PostgreSQL database) lists the same unmatched callbacks,
    and replays them with the connection's secret still sealed under the same key."""
    async with hooked(settings, "twilio", PHONES) as hook:
        for status in ("initiated", "in-progress"):
            assert (await deliver(hook, twilio_callback("CA-late", STRANGER, status))).status_code == 204
        (before,) = await every_page(hook.http, hook.auth)
        auth, campaign_id = hook.auth, hook.campaign_id
    assert len(before) == 2
    async with serving(keyed(settings)) as (_, http):  # a new app: nothing carried over but the database
        (after,) = await every_page(http, auth)
        assert after == before
        added = await http.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": STRANGER}]}, headers=auth
        )
        assert added.status_code == 200
        for item in after:  # in either order: the later one finds the call open
            replayed = await http.post(f"/replayCallback/{item['callback_id']}", headers=auth)
            assert replayed.status_code == 200, replayed.text
            assert replayed.json()["data"] == {
                "callback_id": item["callback_id"],
                "verdict": "applied",
                "reason": None,
            }
        (left,) = await every_page(http, auth)
        assert left == []
        stats = (await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
        assert stats["calls_in_progress"] == 1 and stats["total_contacts"] == 3


async def test_a_replay_applies_once_the_contact_exists_and_never_counts_twice(settings: Settings) -> None:
    async with hooked(settings, "twilio", PHONES) as hook:
        ended = twilio_callback("CA-7", STRANGER, "completed", CallDuration="42")
        assert (await deliver(hook, ended)).status_code == 204
        ((item,), _) = await unmatched_page(hook.http, hook.auth)
        assert item["reason"] == "no such contact in this campaign"

        still = await replay(hook, item["callback_id"])  # nothing fixed yet
        assert still.json()["data"]["verdict"] == "unmatched"
        assert still.json()["data"]["reason"] == "no such contact in this campaign"

        added = await hook.http.post(
            f"/addContacts/{hook.campaign_id}", json={"contacts": [{"phone": STRANGER}]}, headers=hook.auth
        )
        assert added.status_code == 200
        first = await replay(hook, item["callback_id"])
        assert first.status_code == 200 and first.json()["data"]["verdict"] == "applied"
        counted = await numbers(hook)
        assert counted["calls_completed"] == 1 and counted["total_call_duration"] == 42

        for response in [
            await replay(hook, item["callback_id"]),
            *await asyncio.gather(replay(hook, item["callback_id"]), replay(hook, item["callback_id"])),
        ]:
            assert response.status_code == 200 and response.json()["data"]["verdict"] == "duplicate"
        assert (await deliver(hook, ended)).status_code == 204  # and Twilio's own retry
        assert await numbers(hook) == counted
        assert (await unmatched_page(hook.http, hook.auth))[0] == []
        with hook.app.db.read() as conn:
            row = conn.execute(
                select(carrier_callbacks.c.verdict, carrier_callbacks.c.applied_at).where(
                    carrier_callbacks.c.id == item["callback_id"]
                )
            ).one()
        assert (
            row.verdict == "applied" and row.applied_at is not None
        )  # replays that found it applied keep it so
        assert stored_verdicts(hook.app) == {"applied": 1, "duplicate": 1}


async def test_concurrent_replays_of_an_unmatched_callback_count_once(settings: Settings) -> None:
    async with hooked(settings, "twilio", PHONES) as hook:
        assert (await deliver(hook, twilio_callback("CA-8", STRANGER, "busy"))).status_code == 204
        ((item,), _) = await unmatched_page(hook.http, hook.auth)
        await hook.http.post(
            f"/addContacts/{hook.campaign_id}", json={"contacts": [{"phone": STRANGER}]}, headers=hook.auth
        )
        answers = await asyncio.gather(*(replay(hook, item["callback_id"]) for _ in range(4)))
        assert sorted(a.json()["data"]["verdict"] for a in answers) == [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
        ]
        counted = await numbers(hook)
        assert counted["call_status_breakdown"]["busy"] == 1 and counted["calls_pending"] == 3
        # one row, no longer unmatched (replays racing each other may leave it marked duplicate)
        assert sum(stored_verdicts(hook.app).values()) == 1
        assert set(stored_verdicts(hook.app)) <= {"applied", "duplicate"}


async def test_an_unknown_status_replays_unmatched_and_outcome_maps_are_fixed_at_creation(
    settings: Settings,
) -> None:
    """A reason the table does not know stays unmatched however often it is replayed; a connection
    created with an outcome_map entry for it applies the same webhook as that outcome."""
    async with hooked(settings, "retell", PHONES) as hook:
        mapped = await connect(
            hook.http, hook.auth, "retell", outcome_map={"dial_carrier_blocked": "no_answer"}
        )
        call = planned_call("retell", "R-1", PHONES[0], "busy", 0, T0, hook.campaign_id)
        ended = call.callbacks[0]
        ended.payload["call"]["disconnection_reason"] = "dial_carrier_blocked"
        answer = await deliver(hook, ended)
        assert answer.json()["data"]["verdict"] == "unmatched"
        assert answer.json()["data"]["reason"] == "unknown disconnection_reason 'dial_carrier_blocked'"
        for _ in range(2):
            again = await replay(hook, answer.json()["data"]["callback_id"])
            assert again.json()["data"] == answer.json()["data"]
        assert (await numbers(hook))["calls_pending"] == 2 and row_count(hook.app, carrier_callbacks) == 1

        via_map = Hooked(hook.app, hook.http, hook.auth, hook.campaign_id, "retell", mapped, hook.secret)
        taken = await deliver(via_map, ended)
        assert taken.json()["data"]["verdict"] == "applied"
        figures = await numbers(hook)
        assert figures["call_status_breakdown"]["no_answer"] == 1 and figures["calls_pending"] == 2
        listed, _ = await unmatched_page(hook.http, hook.auth)
        assert [item["connection_id"] for item in listed] == [hook.connection_id]


async def test_a_conflicting_state_replays_once_it_is_resolved(settings: Settings) -> None:
    """A second call starting while the contact's first is live is unmatched; once the first ended
    (busy: a retry is due), the replayed start applies."""
    async with hooked(settings, "twilio", PHONES) as hook:
        assert (await deliver(hook, twilio_callback("CA-a", PHONES[0], "initiated"))).status_code == 204
        assert (await deliver(hook, twilio_callback("CA-b", PHONES[0], "initiated"))).status_code == 204
        ((item,), _) = await unmatched_page(hook.http, hook.auth)
        assert item["reason"] == "conflicting state: contact already has a live call"
        assert (await deliver(hook, twilio_callback("CA-a", PHONES[0], "busy"))).status_code == 204
        replayed = await replay(hook, item["callback_id"])
        assert replayed.json()["data"]["verdict"] == "applied"
        figures = await numbers(hook)
        assert figures["calls_in_progress"] == 1 and figures["call_status_breakdown"]["busy"] == 1


async def test_replay_refusals(settings: Settings) -> None:
    """An unknown id, another account's callback: 404; a malformed id: 400; a read key: 403; the
    callback of a deleted connection: 404, and it stays listed."""
    async with hooked(settings, "twilio", PHONES) as hook:
        assert (await deliver(hook, twilio_callback("CA-9", STRANGER, "initiated"))).status_code == 204
        ((item,), _) = await unmatched_page(hook.http, hook.auth)
        assert_error(await replay(hook, str(uuid.uuid4())), 404, "NOT_FOUND")
        assert_error(await replay(hook, "not-a-uuid"), 400, "VALIDATION_ERROR")
        other = {"x-api-key": create_key(hook.app.db, "globex", "write").plaintext}
        assert_error(await replay(hook, item["callback_id"], other), 404, "NOT_FOUND")
        reader = {"x-api-key": create_key(hook.app.db, "acme", "read").plaintext}
        assert_error(await replay(hook, item["callback_id"], reader), 403, "FORBIDDEN")
        assert (await unmatched_page(hook.http, reader))[0] == [item]  # a read key may list
        deleted = await hook.http.post(f"/deleteCarrierConnection/{hook.connection_id}", headers=hook.auth)
        assert deleted.status_code == 200
        assert_error(await replay(hook, item["callback_id"]), 404, "NOT_FOUND")
        assert (await unmatched_page(hook.http, hook.auth))[0] == [item]


@pytest.mark.parametrize("provider", ["twilio", "retell", "vapi"])
async def test_another_accounts_campaign_is_an_unknown_campaign(settings: Settings, provider: str) -> None:
    """acme's connection names globex's campaign (whose contact has the dialed number): unmatched as
    an unknown campaign, and globex's campaign is unchanged; replaying it changes nothing either."""
    async with hooked(settings, provider, PHONES) as hook:
        globex = {"x-api-key": create_key(hook.app.db, "globex", "write").plaintext}
        theirs = await create_campaign(hook.http, globex, PHONES)
        before = (await hook.http.get(f"/getCampaignStats/{theirs}", headers=globex)).json()["data"]
        aimed = Hooked(hook.app, hook.http, hook.auth, theirs, provider, hook.connection_id, hook.secret)
        call = planned_call(provider, "X-1", PHONES[0], "answered", 0, T0, theirs)
        for callback in call.callbacks:
            response = await deliver(aimed, callback)
            assert response.status_code in (200, 204), response.text
        listed, _ = await unmatched_page(hook.http, hook.auth)
        moving = [callback for callback in call.callbacks if callback.moves]
        assert len(listed) == len(moving)
        assert {item["reason"] for item in listed} == {
            "unknown campaign (none with this id in the connection's account)"
        }
        assert all(item["campaign_id"] == theirs for item in listed)
        for item in listed:
            assert (await replay(hook, item["callback_id"])).json()["data"]["verdict"] == "unmatched"
        after = (await hook.http.get(f"/getCampaignStats/{theirs}", headers=globex)).json()["data"]
        assert after == before and after["calls_pending"] == len(PHONES)
        assert (await unmatched_page(hook.http, globex))[0] == []
        assert (await numbers(hook))["calls_pending"] == len(PHONES)


async def test_a_retell_signature_is_checked_before_anything_is_kept(settings: Settings) -> None:
    """An unmatched webhook is kept only when its signature holds: a forged one is 403 and not listed."""
    async with hooked(settings, "retell", PHONES) as hook:
        call = planned_call("retell", "R-9", STRANGER, "busy", 0, T0, hook.campaign_id)
        body = json_body(call.callbacks[0].payload)
        forged = await hook.http.post(
            hook.url(), content=body, headers={"x-retell-signature": retell_signature(body, "key_forged")}
        )
        assert_error(forged, 403, "FORBIDDEN")
        assert (await unmatched_page(hook.http, hook.auth))[0] == []


@pytest.mark.parametrize("provider", ["twilio", "retell", "vapi"])
async def test_two_accounts_may_see_the_same_call_ids(settings: Settings, provider: str) -> None:
    """Event ids are the platform's call ids: one account's calls never make another's duplicates,
    and one account cannot list another's callbacks by naming its connection."""
    async with hooked(settings, provider, PHONES) as hook:
        globex = {"x-api-key": create_key(hook.app.db, "globex", "write").plaintext}
        theirs = Hooked(
            hook.app,
            hook.http,
            globex,
            await create_campaign(hook.http, globex, PHONES),
            provider,
            await connect(hook.http, globex, provider),
            hook.secret,
        )
        for side in (hook, theirs):
            call = planned_call(provider, "SAME-1", PHONES[0], "answered", 0, T0, side.campaign_id)
            for callback in call.callbacks:
                assert (await deliver(side, callback)).status_code in (200, 204)
            assert (await numbers(side))["calls_completed"] == 1
        assert set(stored_verdicts(hook.app)) <= {"applied", "ignored"}
        stray = planned_call(provider, "SAME-2", STRANGER, "busy", 0, T0, theirs.campaign_id)
        assert (await deliver(theirs, stray.callbacks[0])).status_code in (200, 204)
        assert len((await unmatched_page(hook.http, globex))[0]) == 1
        assert (await unmatched_page(hook.http, hook.auth, connection_id=theirs.connection_id))[0] == []
