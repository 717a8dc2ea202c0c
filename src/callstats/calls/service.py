"""Event ingestion: every event goes through the lifecycle core, atomically and on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from callstats.calls import lifecycle, queries
from callstats.calls.lifecycle import RetryRules, Transition
from callstats.calls.schemas import CallEventIn, EventResult, RecordEventsResult, parse_event, raw_event_id
from callstats.campaigns.phones import InvalidPhone, normalize
from callstats.clock import now_ms
from callstats.db.engine import Database
from callstats.stats import counters
from callstats.stats.counters import CounterDelta


@dataclass
class Batch:
    """State shared by the events of one request's transaction."""

    account_id: str
    region: str
    rules: dict[str, RetryRules | None] = field(default_factory=dict)
    deltas: dict[str, CounterDelta] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)

    def campaign_rules(self, conn: Connection, campaign_id: str) -> RetryRules | None:
        """The campaign's rules, looked up once per batch."""
        if campaign_id not in self.rules:
            self.rules[campaign_id] = queries.retry_rules(conn, self.account_id, campaign_id)
        return self.rules[campaign_id]


def _result(
    index: int, event_id: str | None, status: str, error: str | None = None, reason: str | None = None
) -> EventResult:
    return EventResult(index=index, event_id=event_id, status=status, error=error, reason=reason)


def record_events(db: Database, account_id: str, items: list[Any], region: str) -> RecordEventsResult:
    """Apply a batch of raw events; each is applied, a duplicate, or rejected with a reason."""
    parsed = [parse_event(item) for item in items]

    def work(conn: Connection) -> list[EventResult]:
        batch = Batch(account_id=account_id, region=region)
        results = [
            _one(conn, batch, index, item, event)
            for index, (item, event) in enumerate(zip(items, parsed, strict=True))
        ]
        slot = db.pick_slot()
        for campaign_id, delta in batch.deltas.items():
            counters.write(conn, account_id, campaign_id, slot, delta)
        return results

    results = db.write(work)
    tally = {
        status: sum(1 for r in results if r.status == status)
        for status in ("applied", "duplicate", "rejected")
    }
    return RecordEventsResult(received=len(items), results=results, **tally)


def _one(conn: Connection, batch: Batch, index: int, item: Any, event: CallEventIn | str) -> EventResult:
    if isinstance(event, str):
        return _result(index, raw_event_id(item), "rejected", "VALIDATION_ERROR", event)
    known = _known(conn, batch.account_id, event)
    if known is not None:
        return _result(index, event.event_id, *known)
    rules = batch.campaign_rules(conn, event.campaign_id)
    if rules is None:
        return _result(index, event.event_id, "rejected", "NOT_FOUND", "campaign not found")
    try:
        phone = normalize(event.phone, batch.region) if event.contact_id is None else None
    except InvalidPhone as exc:
        return _result(index, event.event_id, "rejected", "VALIDATION_ERROR", f"phone: {exc}")
    contact = queries.locked_contact(conn, event.campaign_id, event.contact_id, phone)
    if contact is None:
        return _result(index, event.event_id, "rejected", "NOT_FOUND", "contact not found in this campaign")
    call = queries.locked_call(conn, batch.account_id, event.call_id)
    transition = lifecycle.apply(contact, call, event.lifecycle_event(), rules)
    if transition.effect == "rejected":
        return _result(index, event.event_id, "rejected", "CONFLICT", transition.reason)
    if not queries.insert_event(conn, _event_row(batch.account_id, event, transition)):
        return _result(index, event.event_id, *(_known(conn, batch.account_id, event) or ("duplicate",)))
    _store(conn, batch, event, transition, is_new_call=call is None)
    return _result(index, event.event_id, "applied", reason=transition.reason)


def _known(conn: Connection, account_id: str, event: CallEventIn) -> tuple[str, ...] | None:
    """('duplicate',) or a conflict when the event id is already stored, else None."""
    stored = queries.stored_event_hash(conn, account_id, event.event_id)
    if stored is None:
        return None
    if stored == event.body_hash():
        return ("duplicate",)
    return ("rejected", "CONFLICT", "event_id already used with a different body")


def _event_row(account_id: str, event: CallEventIn, transition: Transition) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "event_id": event.event_id,
        "body_hash": event.body_hash(),
        "campaign_id": event.campaign_id,
        "call_id": event.call_id,
        "type": event.type,
        "occurred_at": event.occurred_ms(),
        "received_at": now_ms(),
        "effect": transition.effect,
    }


def _store(
    conn: Connection, batch: Batch, event: CallEventIn, transition: Transition, is_new_call: bool
) -> None:
    if transition.effect != "applied":
        return
    if transition.deltas:
        queries.save_contact(conn, transition.contact)
    if transition.call is not None:
        queries.save_call(conn, batch.account_id, event.campaign_id, transition.call, is_new_call)
    delta = batch.deltas.setdefault(event.campaign_id, CounterDelta())
    delta.add(transition.deltas, transition.started_at, transition.finalized_at)
