"""SQL of the calls domain: events, contacts and calls as the lifecycle reads and writes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from callstats.calls.lifecycle import CallState, ContactState, RetryRules
from callstats.db.schema import call_events, calls, campaigns, contacts


def retry_rules(conn: Connection, account_id: str, campaign_id: str) -> RetryRules | None:
    """The campaign's retry rules, or None when the account has no such campaign."""
    row = conn.execute(
        select(campaigns.c.max_attempts, campaigns.c.retry_on).where(
            campaigns.c.id == campaign_id, campaigns.c.account_id == account_id
        )
    ).first()
    if row is None:
        return None
    return RetryRules(max_attempts=row[0], retry_on=frozenset(o for o in row[1].split(",") if o))


def stored_event_hash(conn: Connection, account_id: str, event_id: str) -> str | None:
    """The body hash of an event already stored under this id, if any."""
    return conn.execute(
        select(call_events.c.body_hash).where(
            call_events.c.account_id == account_id, call_events.c.event_id == event_id
        )
    ).scalar()


def insert_event(conn: Connection, values: dict[str, Any]) -> bool:
    """Store an event; False when its id is already taken (a concurrent redelivery)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(call_events).values(**values).on_conflict_do_nothing()
    return conn.execute(stmt.returning(call_events.c.event_id)).first() is not None


_CONTACT_FIELDS = (
    contacts.c.id,
    contacts.c.state,
    contacts.c.attempts,
    contacts.c.live_call_id,
    contacts.c.last_outcome,
    contacts.c.finalized_at,
)


def locked_contact(
    conn: Connection, campaign_id: str, contact_id: int | None, phone: str | None
) -> ContactState | None:
    """The contact (by id or E.164 phone) of the campaign, locked for this transaction."""
    query = select(*_CONTACT_FIELDS).where(contacts.c.campaign_id == campaign_id)
    query = (
        query.where(contacts.c.id == contact_id)
        if contact_id is not None
        else query.where(contacts.c.phone == phone)
    )
    row = conn.execute(query.with_for_update()).first()
    return ContactState(*row) if row is not None else None


def locked_call(conn: Connection, account_id: str, call_id: str) -> CallState | None:
    """The call with this id, locked for this transaction."""
    row = conn.execute(
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
        )
        .where(calls.c.account_id == account_id, calls.c.call_id == call_id)
        .with_for_update()
    ).first()
    return CallState(*row) if row is not None else None


def save_contact(conn: Connection, contact: ContactState) -> None:
    """Write a contact's lifecycle fields."""
    conn.execute(
        update(contacts)
        .where(contacts.c.id == contact.contact_id)
        .values(
            state=contact.state,
            attempts=contact.attempts,
            live_call_id=contact.live_call_id,
            last_outcome=contact.last_outcome,
            finalized_at=contact.finalized_at,
        )
    )


def save_call(conn: Connection, account_id: str, campaign_id: str, call: CallState, is_new: bool) -> None:
    """Insert a new call or write an existing one's fields."""
    values = {
        "status": call.status,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "outcome": call.outcome,
        "duration_seconds": call.duration_seconds,
    }
    if is_new:
        conn.execute(
            insert(calls).values(
                account_id=account_id,
                call_id=call.call_id,
                campaign_id=campaign_id,
                contact_id=call.contact_id,
                attempt=call.attempt,
                started_at=call.started_at,
                **values,
            )
        )
        return
    conn.execute(
        update(calls)
        .where(calls.c.account_id == account_id, calls.c.call_id == call.call_id)
        .values(**values)
    )
