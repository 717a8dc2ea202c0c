"""A call's raw carrier outcome: accepted on call.ended only, kept on the call, counted once.

The pure part (lifecycle and counters) first, then recordCallEvents on a real database, then
migration 0006 on a database holding calls from before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from callstats.app import CallstatsApp
from callstats.config import sqlalchemy_url
from callstats.core.counters import EventApplied, moved
from callstats.core.lifecycle import CallEvent, ContactState, RetryRules, apply
from callstats.db import migrate
from callstats.db.schema import calls
from tests.conftest import new_campaign
from tests.factories import PHONE, call_event, campaign_with_contact, ended_call, record, started_call
from tests.migrated import database_at

T0 = 1_700_000_000_000
ONE_TRY = RetryRules(max_attempts=1, retry_on=frozenset())


# -- the pure core -----------------------------------------------------------------------------------


def test_the_lifecycle_keeps_the_raw_outcome_of_the_event_that_ends_the_call() -> None:
    """The first call.ended decides the outcome and the raw outcome; a later one changes neither."""
    contact = ContactState(1)
    opened = apply(contact, None, CallEvent("call.started", "c1", T0), ONE_TRY)
    assert opened.call is not None and opened.call.raw_outcome is None
    first = CallEvent("call.ended", "c1", T0 + 5_000, "busy", 0, "twilio:busy")
    ended = apply(opened.contact, opened.call, first, ONE_TRY)
    assert ended.call is not None
    assert (ended.call.outcome, ended.call.raw_outcome) == ("busy", "twilio:busy")
    again = CallEvent("call.ended", "c1", T0 + 6_000, "no_answer", 0, "twilio:no-answer")
    late = apply(ended.contact, ended.call, again, ONE_TRY)
    assert late.effect == "no_change" and late.call == ended.call
    restarted = apply(ended.contact, ended.call, CallEvent("call.started", "c1", T0 - 1_000), ONE_TRY)
    assert restarted.effect == "applied" and restarted.call is not None
    assert restarted.call.raw_outcome == "twilio:busy"  # a late call.started moves the start only


def test_moved_counts_a_raw_outcome_once_per_ended_call() -> None:
    """+1 for the call that ends with a raw outcome; nothing for its start, a late end or a call ended
    without one."""
    contact = ContactState(1)
    opened = apply(contact, None, CallEvent("call.started", "c1", T0), ONE_TRY)
    delta = moved(EventApplied(contact, None, opened, T0))
    assert not delta.raw_outcomes
    end = CallEvent("call.ended", "c1", T0 + 5_000, "voicemail", 0, "twilio:machine_end_beep")
    ended = apply(opened.contact, opened.call, end, ONE_TRY)
    moved(EventApplied(opened.contact, opened.call, ended, T0), delta)
    assert delta.raw_outcomes == {"twilio:machine_end_beep": 1}
    restarted = apply(ended.contact, ended.call, CallEvent("call.started", "c1", T0 - 1), ONE_TRY)
    moved(EventApplied(ended.contact, ended.call, restarted, T0), delta)
    assert delta.raw_outcomes == {"twilio:machine_end_beep": 1}
    other = ContactState(2)
    plain = apply(other, None, CallEvent("call.ended", "c2", T0, "busy"), ONE_TRY)
    moved(EventApplied(other, None, plain, T0), delta)
    assert delta.raw_outcomes == {"twilio:machine_end_beep": 1}
    assert delta.columns["att_busy"] == 1 and delta.columns["att_voicemail"] == 1


# -- recordCallEvents --------------------------------------------------------------------------------


def call_row(app: CallstatsApp, call_id: str) -> tuple[Any, ...]:
    """(status, outcome, raw_outcome) of one stored call."""
    with app.db.read() as conn:
        row = conn.execute(
            select(calls.c.status, calls.c.outcome, calls.c.raw_outcome).where(calls.c.call_id == call_id)
        ).one()
    return tuple(row)


async def test_an_ended_call_keeps_its_raw_outcome(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """Stored on the call (spaces around it cut, as every text field); a late call.started, which
    rewrites the call's row, keeps it."""
    campaign_id = await campaign_with_contact(client, auth)
    end = {**ended_call(campaign_id, PHONE, "c1", "no_answer"), "raw_outcome": " twilio:no-answer "}
    assert (await record(client, auth, end))["applied"] == 1
    assert call_row(app, "c1") == ("ended", "no_answer", "twilio:no-answer")
    late_start = started_call(campaign_id, PHONE, "c1", at="2024-01-16T08:59:00Z")
    assert (await record(client, auth, late_start))["applied"] == 1
    assert call_row(app, "c1") == ("ended", "no_answer", "twilio:no-answer")


async def test_without_raw_outcome_the_call_has_none(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    campaign_id = await campaign_with_contact(client, auth)
    await record(client, auth, started_call(campaign_id, PHONE, "c1"))
    assert (await record(client, auth, ended_call(campaign_id, PHONE, "c1", "busy")))["applied"] == 1
    assert call_row(app, "c1") == ("ended", "busy", None)


async def test_a_redelivery_is_a_duplicate_and_a_changed_raw_outcome_a_conflict(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """The raw outcome is part of the event's body: the same body again is a duplicate; the same
    event_id with another raw outcome (or none) is a CONFLICT, and the call keeps the first."""
    campaign_id = await campaign_with_contact(client, auth)
    end = {**ended_call(campaign_id, PHONE, "c1", "busy"), "raw_outcome": "retell:dial_busy"}
    assert (await record(client, auth, end))["applied"] == 1
    results = (
        await record(
            client,
            auth,
            end,
            {**end, "raw_outcome": "retell:dial_no_answer"},
            {k: v for k, v in end.items() if k != "raw_outcome"},
        )
    )["results"]
    assert [(r["status"], r["error"]) for r in results] == [
        ("duplicate", None),
        ("rejected", "CONFLICT"),
        ("rejected", "CONFLICT"),
    ]
    assert call_row(app, "c1") == ("ended", "busy", "retell:dial_busy")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"type": "call.started", "raw_outcome": "twilio:initiated"}, "only allowed on call.ended"),
        ({"type": "call.answered", "raw_outcome": "twilio:in-progress"}, "only allowed on call.ended"),
        ({"raw_outcome": "x" * 161}, "raw_outcome: String should have at most 160 characters"),
        ({"raw_outcome": ""}, "raw_outcome: String should have at least 1 character"),
        ({"raw_outcome": "   "}, "raw_outcome: String should have at least 1 character"),
        ({"raw_outcome": 5}, "raw_outcome: Input should be a valid string"),
        ({"raw_outcome": ["twilio:busy"]}, "raw_outcome: Input should be a valid string"),
        ({"raw_outcome": "twilio:\x00busy"}, "raw_outcome: "),
    ],
)
async def test_a_bad_raw_outcome_rejects_its_event_only(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, fields: dict[str, Any], reason: str
) -> None:
    """A VALIDATION_ERROR naming the field, like outcome's; the neighbour is applied."""
    campaign_id = await campaign_with_contact(client, auth)
    bad = {**call_event(campaign_id, "bad", "c-bad", "call.ended", outcome="busy"), **fields}
    if bad["type"] != "call.ended":
        del bad["outcome"]  # only the raw outcome is out of place
    good = {**ended_call(campaign_id, PHONE, "c1", "busy"), "raw_outcome": "x" * 64}
    results = (await record(client, auth, bad, good))["results"]
    assert (results[0]["status"], results[0]["error"]) == ("rejected", "VALIDATION_ERROR")
    assert reason in results[0]["reason"] and "raw_outcome" in results[0]["reason"]
    assert results[1]["status"] == "applied"
    assert call_row(app, "c1") == ("ended", "busy", "x" * 64)


async def test_a_null_raw_outcome_is_no_raw_outcome(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """`"raw_outcome": null` is the same body as no raw_outcome at all (a duplicate of it)."""
    campaign_id = await new_campaign(client, auth)
    await client.post(f"/addContacts/{campaign_id}", json={"contacts": [{"phone": PHONE}]}, headers=auth)
    end = ended_call(campaign_id, PHONE, "c1", "failed")
    results = (await record(client, auth, {**end, "raw_outcome": None}, end))["results"]
    assert [r["status"] for r in results] == ["applied", "duplicate"]
    assert call_row(app, "c1") == ("ended", "failed", None)


# -- migration 0006 ----------------------------------------------------------------------------------


@pytest.fixture
def database_at_0005(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database migrated to revision 0005 only (a private one on PostgreSQL)."""
    with database_at("0005", database_url, tmp_path) as url:
        yield url


def test_migration_0006_keeps_old_calls_without_a_raw_outcome(database_at_0005: str) -> None:
    """A call stored before 0006 has no raw outcome after it; 0006 goes down and up again."""
    engine = create_engine(sqlalchemy_url(database_at_0005), poolclass=NullPool)
    old_call = (
        "INSERT INTO calls (account_id, call_id, campaign_id, contact_id, attempt, status, outcome,"
        " duration_seconds, started_at, ended_at) VALUES ('a', :call, 'c', 1, 1, 'ended', 'busy', 0, 1, 2)"
    )
    try:
        with engine.begin() as conn:
            conn.execute(text(old_call), {"call": "before"})
        migrate.upgrade(database_at_0005)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT call_id, raw_outcome FROM calls")).all() == [("before", None)]
            assert conn.execute(text("SELECT count(*) FROM campaign_raw_outcomes")).scalar_one() == 0
        command.downgrade(migrate.alembic_config(database_at_0005), "0005")
        with engine.begin() as conn:
            conn.execute(text(old_call), {"call": "between"})
        assert migrate.upgrade(database_at_0005).before == "0005"
        with engine.begin() as conn:
            assert (
                conn.execute(text("SELECT count(*) FROM calls WHERE raw_outcome IS NULL")).scalar_one() == 2
            )
    finally:
        engine.dispose()
