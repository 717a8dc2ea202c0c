"""Recompute a campaign's numbers from the raw contact and call rows, and compare."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, select

from callstats.calls.lifecycle import OUTCOMES
from callstats.db.schema import calls, campaigns, contacts
from callstats.stats import counters as counters_store
from callstats.stats.counters import Counters


@dataclass(frozen=True)
class CallRow:
    """The fields of one call that the recomputation reads."""

    attempt: int
    status: str
    outcome: str | None
    duration_seconds: int | None
    started_at: int
    ended_at: int | None


@dataclass(frozen=True)
class Difference:
    """One number that the counters and the raw rows disagree on."""

    field: str
    counters: Any
    recomputed: Any


def contact_state(history: list[CallRow], max_attempts: int, retry_on: frozenset[str]) -> str:
    """A contact's state, derived only from its calls in attempt order."""
    if not history:
        return "pending"
    last = history[-1]
    if last.status == "live":
        return "in_progress"
    if last.outcome == "answered":
        return "completed"
    if last.outcome in retry_on and len(history) < max_attempts:
        return "pending"
    return "failed"


def recompute_from(
    campaign_id: str,
    name: str,
    contact_ids: Iterable[int],
    histories: Iterator[tuple[int, list[CallRow]]],
    max_attempts: int,
    retry_on: frozenset[str],
) -> Counters:
    """Counters built from raw rows: every contact id and each contact's calls."""
    states = {"pending": 0, "in_progress": 0, "completed": 0, "failed": 0}
    breakdown = dict.fromkeys(OUTCOMES, 0)
    total = talk = 0
    first: int | None = None
    last_final: int | None = None
    called = dict(histories)
    for contact_id in contact_ids:
        total += 1
        history = called.get(contact_id, [])
        state = contact_state(history, max_attempts, retry_on)
        states[state] += 1
        ended = [c for c in history if c.status == "ended"]
        if ended:
            breakdown[ended[-1].outcome or "failed"] += 1
        talk += sum(c.duration_seconds or 0 for c in ended if c.outcome == "answered")
        if history:
            first = (
                min(c.started_at for c in history)
                if first is None
                else min(first, *(c.started_at for c in history))
            )
        if state in ("completed", "failed") and ended[-1].ended_at is not None:
            last_final = ended[-1].ended_at if last_final is None else max(last_final, ended[-1].ended_at)
    return Counters(
        campaign_id=campaign_id,
        campaign_name=name,
        total=total,
        talk_seconds=talk,
        breakdown=breakdown,
        first_call_at=first,
        last_final_at=last_final,
        **states,
    )


def recompute(conn: Connection, campaign_id: str) -> Counters | None:
    """Every number of a campaign recomputed from its contact and call rows."""
    campaign = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if campaign is None:
        return None
    retry_on = frozenset(o for o in campaign["retry_on"].split(",") if o)
    contact_ids = conn.execute(select(contacts.c.id).where(contacts.c.campaign_id == campaign_id)).scalars()
    call_rows = conn.execute(
        select(
            calls.c.contact_id,
            calls.c.attempt,
            calls.c.status,
            calls.c.outcome,
            calls.c.duration_seconds,
            calls.c.started_at,
            calls.c.ended_at,
        )
        .where(calls.c.campaign_id == campaign_id)
        .order_by(calls.c.contact_id, calls.c.attempt)
    ).all()
    histories = (
        (contact_id, [CallRow(*row[1:]) for row in rows])
        for contact_id, rows in groupby(call_rows, key=lambda row: row[0])
    )
    return recompute_from(
        campaign_id, campaign["name"], list(contact_ids), histories, campaign["max_attempts"], retry_on
    )


def differences(conn: Connection, campaign_id: str) -> list[Difference] | None:
    """Where the stored counters differ from the recomputation (None: no such campaign)."""
    recomputed = recompute(conn, campaign_id)
    if recomputed is None:
        return None
    account_id = conn.execute(
        select(campaigns.c.account_id).where(campaigns.c.id == campaign_id)
    ).scalar_one()
    stored = counters_store.read(conn, account_id, campaign_id)
    assert stored is not None
    stored_fields, fresh_fields = asdict(stored), asdict(recomputed)
    return [
        Difference(name, stored_fields[name], fresh_fields[name])
        for name in fresh_fields
        if stored_fields[name] != fresh_fields[name]
    ]
