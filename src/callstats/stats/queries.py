"""The raw rows reconcile recomputes the counters from, read on one snapshot.

Role: the queries of stats/ that are not counter SQL (the counters, histograms and minutes are read
by db/counters.py): a campaign, its contact ids and its calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from typing import Any, NamedTuple

from sqlalchemy import Connection, RowMapping, select

from callstats.db.engine import Database
from callstats.db.schema import calls, campaigns, contacts


@dataclass(frozen=True)
class CallRow:
    """The fields of one call that the recomputation reads."""

    attempt: int
    status: str
    outcome: str | None
    duration_seconds: int | None
    started_at: int
    ended_at: int | None
    raw_outcome: str | None = None


class RawCampaign(NamedTuple):
    """A campaign's raw rows."""

    campaign: RowMapping
    """The campaigns row (name, account_id, max_attempts, retry_on, ...)."""
    contact_ids: list[int]
    """Every contact's id."""
    histories: dict[int, list[CallRow]]
    """Each called contact's calls, in attempt order (contacts never called are absent)."""


def raw_campaign(conn: Connection, campaign_id: str) -> RawCampaign | None:
    """The campaign row, its contact ids and each called contact's calls; None: no such campaign."""
    campaign = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if campaign is None:
        return None
    contact_ids = list(
        conn.execute(select(contacts.c.id).where(contacts.c.campaign_id == campaign_id)).scalars()
    )
    c = calls.c
    call_rows = conn.execute(
        select(
            c.contact_id,
            c.attempt,
            c.status,
            c.outcome,
            c.duration_seconds,
            c.started_at,
            c.ended_at,
            c.raw_outcome,
        )
        .where(c.campaign_id == campaign_id)
        .order_by(c.contact_id, c.attempt)
    ).all()
    histories = {
        contact_id: [_call_row(*row) for row in rows]
        for contact_id, rows in groupby(call_rows, key=lambda row: row.contact_id)
    }
    return RawCampaign(campaign, contact_ids, histories)


def _call_row(_contact_id: int, *fields: Any) -> CallRow:
    return CallRow(*fields)


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A connection whose reads all see one snapshot, however many statements they take.

    Reconciling a live campaign reads the counters and the raw rows in several
    statements; under PostgreSQL's default READ COMMITTED a write committing in
    between would show up as a false difference. (SQLite's reads already hold one
    snapshot per transaction.)
    """
    with db.read() as conn:
        if not db.is_sqlite:
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn
