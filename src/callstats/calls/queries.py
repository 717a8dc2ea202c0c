"""SQL of the calls domain: a batch's events, contacts and calls, read and written set-wise.

Statements are built once at import (with bind parameters) and run on the driver's
connection (db/driver.py): SQLAlchemy's per-execute work cost more than running them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from callstats.core.lifecycle import CallState, ContactState, RetryRules
from callstats.db.driver import Statement
from callstats.db.schema import call_events, calls, campaigns, contacts

_CHUNK = 500

_RULES = Statement(
    select(campaigns.c.id, campaigns.c.max_attempts, campaigns.c.retry_on).where(
        campaigns.c.id.in_(bindparam("ids", expanding=True)),
        campaigns.c.account_id == bindparam("account_id"),
    )
)
_REGIONS = Statement(
    select(campaigns.c.id, campaigns.c.default_region).where(
        campaigns.c.id.in_(bindparam("ids", expanding=True))
    )
)
_IDS_BY_PHONE = Statement(
    select(contacts.c.phone, contacts.c.id).where(
        contacts.c.campaign_id == bindparam("campaign_id"),
        contacts.c.phone.in_(bindparam("phones", expanding=True)),
    )
)
_LOCKED_CONTACTS = Statement(
    select(
        contacts.c.campaign_id,
        contacts.c.id,
        contacts.c.state,
        contacts.c.attempts,
        contacts.c.live_call_id,
        contacts.c.last_outcome,
        contacts.c.finalized_at,
        contacts.c.last_call_at,
    )
    .where(
        contacts.c.id.in_(bindparam("ids", expanding=True)), contacts.c.account_id == bindparam("account_id")
    )
    .order_by(contacts.c.id)
    .with_for_update()
)
_EVENT_HASHES = Statement(
    select(call_events.c.event_id, call_events.c.body_hash).where(
        call_events.c.account_id == bindparam("account_id"),
        call_events.c.event_id.in_(bindparam("ids", expanding=True)),
    )
)
_LOCKED_CALLS = Statement(
    select(
        calls.c.call_id,
        calls.c.contact_id,
        calls.c.attempt,
        calls.c.started_at,
        calls.c.status,
        calls.c.answered_at,
        calls.c.ended_at,
        calls.c.outcome,
        calls.c.duration_seconds,
        calls.c.start_reported,
        calls.c.raw_outcome,
    )
    .where(
        calls.c.account_id == bindparam("account_id"), calls.c.call_id.in_(bindparam("ids", expanding=True))
    )
    .order_by(calls.c.call_id)
    .with_for_update()
)
_INSERT_EVENTS = Statement(insert(call_events), [c.name for c in call_events.c])
_CONTACT_FIELDS = ["state", "attempts", "live_call_id", "last_outcome", "finalized_at", "last_call_at"]
_SAVE_CONTACTS = Statement(update(contacts).where(contacts.c.id == bindparam("b_id")), _CONTACT_FIELDS)
_INSERT_CALLS = Statement(insert(calls), [c.name for c in calls.c])
_CALL_FIELDS = [
    "started_at",
    "start_reported",
    "status",
    "answered_at",
    "ended_at",
    "outcome",
    "duration_seconds",
    "raw_outcome",
]
_SAVE_CALLS = Statement(
    update(calls).where(calls.c.account_id == bindparam("b_account"), calls.c.call_id == bindparam("b_call")),
    _CALL_FIELDS,
)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def retry_rules(
    conn: Connection, account_id: str, campaign_ids: set[str]
) -> Callable[[], dict[str, RetryRules]]:
    """The retry rules of those campaigns the account owns (sent now, fetched by calling the result)."""
    if not campaign_ids:
        return dict
    sent = _RULES.send(conn, {"ids": sorted(campaign_ids), "account_id": account_id})
    return lambda: {
        cid: RetryRules(max_attempts=max_attempts, retry_on=frozenset(o for o in retry_on.split(",") if o))
        for cid, max_attempts, retry_on in sent()
    }


def campaign_regions(conn: Connection, campaign_ids: set[str]) -> Callable[[], dict[str, str]]:
    """Each existing campaign's default_region (sent now, fetched by calling the result).

    Not filtered by account: it only says how to read a number; what it finds is locked (or not)
    with the account's filter.
    """
    if not campaign_ids:
        return dict
    sent = _REGIONS.send(conn, {"ids": sorted(campaign_ids)})
    return lambda: {campaign_id: region for campaign_id, region in sent()}


def contact_ids_by_phone(
    conn: Connection, pairs: set[tuple[str, str]]
) -> Callable[[], dict[tuple[str, str], int]]:
    """Contact ids for (campaign_id, E.164 phone) pairs that exist (sent now, fetched by calling the result).

    Not filtered by account: the contacts found are then locked (or not) with the account's filter.
    """
    phones_by_campaign: dict[str, list[str]] = {}
    for campaign_id, phone in sorted(pairs):
        phones_by_campaign.setdefault(campaign_id, []).append(phone)
    sent = [
        (campaign_id, _IDS_BY_PHONE.send(conn, {"campaign_id": campaign_id, "phones": list(chunk)}))
        for campaign_id, phones in phones_by_campaign.items()
        for chunk in _chunks(phones)
    ]
    return lambda: {
        (campaign_id, phone): contact_id for campaign_id, rows in sent for phone, contact_id in rows()
    }


def _account_rows(
    statement: Statement, conn: Connection, account_id: str, ids: set[Any]
) -> Callable[[], list[tuple[Any, ...]]]:
    """The account's rows for these ids, sent now in sorted chunks; fetched by calling the result."""
    sent = [
        statement.send(conn, {"ids": list(chunk), "account_id": account_id}) for chunk in _chunks(sorted(ids))
    ]
    return lambda: [row for rows in sent for row in rows()]


def locked_contacts(
    conn: Connection, account_id: str, ids: set[int]
) -> Callable[[], dict[int, tuple[str, ContactState]]]:
    """The account's contacts with these ids and their campaign, locked in id order (no deadlock cycles).

    Sent now, fetched by calling the result (see driver.Statement.send); so are the two below.
    """
    fetch = _account_rows(_LOCKED_CONTACTS, conn, account_id, ids)
    return lambda: {row[1]: (row[0], ContactState(*row[1:])) for row in fetch()}


def stored_event_hashes(
    conn: Connection, account_id: str, event_ids: set[str]
) -> Callable[[], dict[str, str]]:
    """Body hashes of the events already stored under these ids."""
    fetch = _account_rows(_EVENT_HASHES, conn, account_id, event_ids)
    return lambda: {event_id: body_hash for event_id, body_hash in fetch()}


def locked_calls(conn: Connection, account_id: str, call_ids: set[str]) -> Callable[[], dict[str, CallState]]:
    """The account's calls with these ids, locked."""
    fetch = _account_rows(_LOCKED_CALLS, conn, account_id, call_ids)
    return lambda: {row[0]: _call_state(row) for row in fetch()}


def _call_state(row: tuple[Any, ...]) -> CallState:
    """A call from a _LOCKED_CALLS row (SQLite gives the boolean as 0 or 1)."""
    (
        call_id,
        contact_id,
        attempt,
        started_at,
        status,
        answered_at,
        ended_at,
        outcome,
        duration,
        reported,
        raw,
    ) = row
    return CallState(
        call_id,
        contact_id,
        attempt,
        started_at,
        status,
        answered_at,
        ended_at,
        outcome,
        duration,
        bool(reported),
        raw,
    )


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Store applied events (a concurrent redelivery makes this fail, and the batch is retried)."""
    if rows:
        _INSERT_EVENTS.executemany(conn, rows)


def save_contacts(conn: Connection, states: Iterable[ContactState]) -> None:
    """Write contacts' lifecycle fields."""
    rows = [
        {
            "b_id": c.contact_id,
            "state": c.state,
            "attempts": c.attempts,
            "live_call_id": c.live_call_id,
            "last_outcome": c.last_outcome,
            "finalized_at": c.finalized_at,
            "last_call_at": c.last_call_at,
        }
        for c in states
    ]
    if rows:
        _SAVE_CONTACTS.executemany(conn, rows)


def _call_values(call: CallState) -> dict[str, Any]:
    return {
        "started_at": call.started_at,
        "start_reported": call.start_reported,
        "status": call.status,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "outcome": call.outcome,
        "duration_seconds": call.duration_seconds,
        "raw_outcome": call.raw_outcome,
    }


def insert_calls(conn: Connection, account_id: str, new_calls: Iterable[tuple[str, CallState]]) -> None:
    """Store new calls, given with their campaign id."""
    rows = [
        {
            "account_id": account_id,
            "call_id": call.call_id,
            "campaign_id": campaign_id,
            "contact_id": call.contact_id,
            "attempt": call.attempt,
            **_call_values(call),
        }
        for campaign_id, call in new_calls
    ]
    if rows:
        _INSERT_CALLS.executemany(conn, rows)


def save_calls(conn: Connection, account_id: str, changed: Iterable[CallState]) -> None:
    """Write existing calls' fields."""
    rows = [{"b_account": account_id, "b_call": call.call_id, **_call_values(call)} for call in changed]
    if rows:
        _SAVE_CALLS.executemany(conn, rows)
