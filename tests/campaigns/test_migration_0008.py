"""Migration 0008 on a database holding data from before it: existing campaigns get the default
stall_after_minutes and their last event from their stored events; a server of the previous version
can still write; an erased contact can be stored; the revision goes down and up again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from callstats.config import sqlalchemy_url
from callstats.db import migrate
from tests.migrated import database_at

# Rows as a 0006 server writes them (it names none of 0008's columns).
OLD_ROWS = [
    "INSERT INTO accounts (id, name, created_at) VALUES ('a', 'acme', 1)",
    "INSERT INTO campaigns (id, account_id, name, max_attempts, retry_on, created_at, default_region)"
    " VALUES (:campaign, 'a', 'old', 3, 'busy', 1, 'US')",
    "INSERT INTO campaign_counters (campaign_id, slot, account_id, total, pending, in_progress, completed,"
    " failed, talk_seconds, bd_answered, bd_busy, bd_no_answer, bd_failed, bd_voicemail)"
    " VALUES (:campaign, :slot, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
    "INSERT INTO contacts (campaign_id, account_id, phone, state, attempts, created_at)"
    " VALUES (:campaign, 'a', :phone, 'pending', 0, 1)",
    "INSERT INTO call_events (account_id, event_id, body_hash, campaign_id, call_id, type, occurred_at,"
    " received_at, effect) VALUES ('a', :event, 'h', :campaign, 'c1', 'call.started', 5, :received, :effect)",
]


@pytest.fixture
def database_at_0006(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database migrated to revision 0006 only (a private one on PostgreSQL)."""
    with database_at("0006", database_url, tmp_path) as url:
        yield url


def write_old(conn: Connection, campaign: str, phone: str, events: list[tuple[str, int, str]]) -> None:
    """A campaign with two counter slots, one contact and `events` (id, received_at, effect), as 0006 did."""
    insert_account, insert_campaign, insert_slot, insert_contact, insert_event = (text(q) for q in OLD_ROWS)
    if conn.execute(text("SELECT count(*) FROM accounts")).scalar_one() == 0:
        conn.execute(insert_account)
    conn.execute(insert_campaign, {"campaign": campaign})
    for slot in (0, 1):
        conn.execute(insert_slot, {"campaign": campaign, "slot": slot})
    conn.execute(insert_contact, {"campaign": campaign, "phone": phone})
    for event, received, effect in events:
        conn.execute(
            insert_event, {"event": event, "campaign": campaign, "received": received, "effect": effect}
        )


def test_migration_0008_backfills_and_keeps_old_writers_working(database_at_0006: str) -> None:
    """last_event_at is the latest applied event's receipt (slot 0 only; no_change events ignored, none
    for a campaign without events), stall_after_minutes 30; rows in 0006's shape still insert; a contact
    can lose its phone; down to 0006 and up again."""
    engine = create_engine(sqlalchemy_url(database_at_0006), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            write_old(
                conn,
                "c1",
                "+14155550101",
                [("e1", 1_000, "applied"), ("e2", 3_000, "applied"), ("e3", 9_000, "no_change")],
            )
            write_old(conn, "c2", "+14155550102", [])
        migrate.upgrade(database_at_0006)
        with engine.begin() as conn:
            slots = conn.execute(
                text("SELECT campaign_id, slot, last_event_at FROM campaign_counters ORDER BY 1, 2")
            )
            assert slots.all() == [("c1", 0, 3_000), ("c1", 1, None), ("c2", 0, None), ("c2", 1, None)]
            stall = conn.execute(text("SELECT id, stall_after_minutes FROM campaigns ORDER BY id")).all()
            assert stall == [("c1", 30), ("c2", 30)]
            write_old(conn, "c3", "+14155550103", [("e4", 4_000, "applied")])  # a 0006 server, after 0008
            assert (
                conn.execute(text("SELECT stall_after_minutes FROM campaigns WHERE id = 'c3'")).scalar_one()
                == 30
            )
            conn.execute(text("UPDATE contacts SET phone = NULL, erased_at = 7 WHERE campaign_id = 'c3'"))
            conn.execute(
                text("UPDATE contacts SET phone = '+14155550104', erased_at = NULL WHERE campaign_id = 'c3'")
            )
        command.downgrade(migrate.alembic_config(database_at_0006), "0006")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM contacts")).scalar_one() == 3
        assert migrate.upgrade(database_at_0006).before == "0006"
        with engine.begin() as conn:
            latest = "SELECT max(last_event_at) FROM campaign_counters WHERE campaign_id = :c"
            assert [conn.execute(text(latest), {"c": c}).scalar_one() for c in ("c1", "c2", "c3")] == [
                3_000,
                None,
                4_000,
            ]
    finally:
        engine.dispose()
