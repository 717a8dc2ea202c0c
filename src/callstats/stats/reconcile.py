"""Recompute a campaign's numbers from the raw contact and call rows, and compare.

Role: the check of stats/. The recomputation (contact_state, recompute_from, recompute_extras)
takes rows, not connections; the raw rows come from stats/queries.py, the stored figures from
db/counters.py (`read`) and `stored_extras` here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection

from callstats.core.counters import Counters, minute_of
from callstats.core.histogram import talk_bucket
from callstats.core.outcomes import OUTCOMES
from callstats.db import counters as counters_store
from callstats.db.engine import Database
from callstats.stats.queries import CallRow, raw_campaign, snapshot


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


def _rules(campaign: Any) -> tuple[int, frozenset[str]]:
    return campaign["max_attempts"], frozenset(o for o in campaign["retry_on"].split(",") if o)


def recompute(conn: Connection, campaign_id: str) -> Counters | None:
    """Every number of the seed's response, recomputed from a campaign's contact and call rows."""
    loaded = raw_campaign(conn, campaign_id)
    if loaded is None:
        return None
    campaign, contact_ids, histories = loaded
    return recompute_from(
        campaign_id, campaign["name"], contact_ids, iter(histories.items()), *_rules(campaign)
    )


def recompute_extras(
    histories: dict[int, list[CallRow]], max_attempts: int, retry_on: frozenset[str]
) -> dict[str, Any]:
    """Attempt counts, histograms, per-minute counts and ended calls by raw outcome, from every contact's
    calls (empty lists included)."""
    columns: Counter[str] = Counter()
    per_contact: Counter[int] = Counter()
    talk: Counter[int] = Counter()
    minutes: Counter[tuple[int, str]] = Counter()
    raw_outcomes: Counter[str] = Counter()
    for history in histories.values():
        per_contact[len(history)] += 1
        for call in history:
            columns["attempts"] += 1
            minutes[(minute_of(call.started_at), "starts")] += 1
            if call.status == "ended" and call.outcome and call.ended_at is not None:
                columns["att_" + call.outcome] += 1
                minutes[(minute_of(call.ended_at), call.outcome)] += 1
                if call.raw_outcome is not None:
                    raw_outcomes[call.raw_outcome] += 1
                if call.outcome == "answered":
                    talk[talk_bucket(call.duration_seconds or 0)] += 1
                    minutes[(minute_of(call.ended_at), "talk_seconds")] += call.duration_seconds or 0
        if history and contact_state(history, max_attempts, retry_on) == "failed" and history[-1].ended_at:
            minutes[(minute_of(history[-1].ended_at), "finals_failed")] += 1
    return _nonzero(columns, per_contact, talk, minutes, raw_outcomes)


def _nonzero(
    columns: Counter[str],
    per_contact: Counter[int],
    talk: Counter[int],
    minutes: Counter[tuple[int, str]],
    raw_outcomes: Counter[str],
) -> dict[str, Any]:
    return {
        "attempt_columns": {k: v for k, v in columns.items() if v},
        "attempts_per_contact": {k: v for k, v in per_contact.items() if v},
        "talk_histogram": {k: v for k, v in talk.items() if v},
        "minutes": {k: v for k, v in minutes.items() if v},
        "raw_outcomes": {k: v for k, v in raw_outcomes.items() if v},
    }


def stored_extras(conn: Connection, campaign_id: str) -> dict[str, Any]:
    """The same figures as kept in the counters, histogram, minute and raw outcome tables (db/counters.py)."""
    kept = counters_store.histograms(conn, campaign_id)
    first, last = counters_store.minute_span(conn, campaign_id)
    minutes: Counter[tuple[int, str]] = Counter()
    if first is not None and last is not None:
        for minute, counts in counters_store.minutes(conn, campaign_id, first, last + 1):
            for name, value in counts.items():
                minutes[(minute, name)] += value
    return _nonzero(
        Counter(counters_store.attempt_columns(conn, campaign_id)),
        Counter(kept["a"]),
        Counter(kept["t"]),
        minutes,
        Counter(counters_store.raw_outcomes(conn, campaign_id)),
    )


def differences(conn: Connection, campaign_id: str) -> list[Difference] | None:
    """Where the stored figures differ from the recomputation from raw rows (None: no such campaign)."""
    loaded = raw_campaign(conn, campaign_id)
    if loaded is None:
        return None
    campaign, contact_ids, histories = loaded
    rules = _rules(campaign)
    recomputed = recompute_from(campaign_id, campaign["name"], contact_ids, iter(histories.items()), *rules)
    stored = counters_store.read(conn, campaign["account_id"], campaign_id)
    assert stored is not None
    stored_fields = {**asdict(stored), **stored_extras(conn, campaign_id)}
    everyone = {contact_id: histories.get(contact_id, []) for contact_id in contact_ids}
    fresh_fields = {**asdict(recomputed), **recompute_extras(everyone, *rules)}
    return [
        Difference(name, stored_fields[name], fresh_fields[name])
        for name in fresh_fields
        if stored_fields[name] != fresh_fields[name]
    ]


def live_differences(db: Database, campaign_id: str) -> list[Difference] | None:
    """`differences` on one snapshot: safe while events are being written."""
    with snapshot(db) as conn:
        return differences(conn, campaign_id)
