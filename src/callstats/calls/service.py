"""Event ingestion: every event goes through the lifecycle core, atomically and on its own.

A request's events share one transaction: the contacts and calls they touch are
read and locked set-wise, each event is applied in order in memory through
`lifecycle.apply` (a rejected event changes nothing), and the resulting rows and
counter deltas are written together before the commit. Several requests can share
one transaction (calls/group.py): their events are loaded together and applied
request by request, exactly as if they had run one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from sqlalchemy import Connection

from callstats.calls import queries
from callstats.calls.schemas import (
    CallEventIn,
    EventResult,
    EventRules,
    RecordEventsResult,
    parse_event,
    raw_event_id,
)
from callstats.clock import now_ms
from callstats.core import lifecycle
from callstats.core.counters import CounterDelta, EventApplied, moved
from callstats.core.lifecycle import CallState, ContactState, RetryRules
from callstats.core.phones import InvalidPhone, normalize
from callstats.db import counters
from callstats.db.driver import pipelined
from callstats.db.engine import Database
from callstats.ids import canonical_uuid

Status = Literal["applied", "duplicate", "rejected"]


@dataclass
class Batch:
    """What one request's transaction has read, and what it will write."""

    account_id: str
    rules: dict[str, RetryRules]
    contacts: dict[int, tuple[str, ContactState]]
    calls: dict[str, CallState]
    stored_hashes: dict[str, str]
    new_calls: dict[str, str] = field(default_factory=dict)  # call id -> campaign id
    changed_contacts: set[int] = field(default_factory=set)
    changed_calls: set[str] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)
    deltas: dict[str, CounterDelta] = field(default_factory=dict)
    later_starts: set[str] = field(default_factory=set)  # campaigns where a call's start moved later


class Resolved(NamedTuple):
    """A valid event and the contact id it names (None when its phone names no contact).

    A named tuple, not a frozen dataclass: one is built per event, and a tuple's is the cheaper.
    """

    event: CallEventIn
    contact_id: int | None
    problem: str | None = None


def record_events(db: Database, account_id: str, items: list[Any], rules: EventRules) -> RecordEventsResult:
    """Apply a batch of raw events; each is applied, a duplicate, or rejected with a reason."""
    return record_events_as(db, lambda _conn: account_id, items, rules)


def record_events_as(
    db: Database, writer: Callable[[Connection], str], items: list[Any], rules: EventRules
) -> RecordEventsResult:
    """The same, for the account `writer` finds (or refuses) first thing in the write's transaction."""
    outcome = record_requests(db, lambda conn: [writer(conn)], [items], rules)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def record_requests(
    db: Database,
    writers: Callable[[Connection], list[str | Exception]],
    requests: list[list[Any]],
    rules: EventRules,
) -> list[RecordEventsResult | Exception]:
    """Several requests' events in one transaction, each answered as if it had run alone, in this order.

    `writers` finds each request's account (or why it may not write) first thing in the transaction;
    a request's events only read and change that account's rows. An exception raised (rather than
    returned) fails the whole transaction: nothing of any request is stored.
    """
    window = rules.window(now_ms())  # one clock reading for every event of the group
    parsed = [[parse_event(item, rules, window) for item in items] for items in requests]
    named = {
        (ev.campaign_id, ev.phone) for es in parsed for ev in es if isinstance(ev, CallEventIn) and ev.phone
    }
    # '+country' numbers read the same in every region: normalized before the transaction
    international = {pair: _e164(pair[1], rules.default_region) for pair in named if pair[1][0] == "+"}
    national = {pair for pair in named if pair[1][0] != "+"}

    def work(conn: Connection) -> list[list[EventResult] | Exception]:
        with pipelined(conn):  # the phones' contacts (any account's), regions and keys: one round trip
            sent = queries.contact_ids_by_phone(conn, _found(international))
            regions = queries.campaign_regions(conn, {campaign_id for campaign_id, _ in national})
            accounts = writers(conn)
            by_phone = sent()
            region_of = regions()
        phones = international | {
            (c, raw): _e164(raw, region_of.get(c, rules.default_region)) for c, raw in national
        }
        if national:  # numbers without +country: read in their campaign's region, one more round trip
            with pipelined(conn):
                by_phone |= queries.contact_ids_by_phone(conn, _found(phones) - _found(international))()
        outcomes: list[list[EventResult] | Exception] = [
            a if isinstance(a, Exception) else [] for a in accounts
        ]
        batches: dict[str, Batch] = {}
        resolved: list[list[Resolved | str]] = [[] for _ in requests]
        for account_id in sorted({a for a in accounts if isinstance(a, str)}):  # one lock order
            mine = [n for n, a in enumerate(accounts) if a == account_id]
            batch, entries = _load(conn, account_id, [ev for n in mine for ev in parsed[n]], phones, by_phone)
            batches[account_id] = batch
            start = 0
            for n in mine:
                resolved[n], start = entries[start : start + len(parsed[n])], start + len(parsed[n])
        for n, account in enumerate(accounts):  # in arrival order, as if one after another
            if isinstance(account, str):
                batch, items = batches[account], requests[n]
                outcomes[n] = [_one(batch, index, items[index], e) for index, e in enumerate(resolved[n])]
        slot = db.pick_slot()
        with pipelined(conn):
            for batch in batches.values():
                _write_all(conn, batch, slot)
        return outcomes

    return [
        outcome if isinstance(outcome, Exception) else RecordEventsResult.tallied(outcome)
        for outcome in db.write(work)
    ]


def applied_campaigns(items: list[Any], result: RecordEventsResult) -> set[str]:
    """The campaigns a request applied events to (what the change feed must hear about)."""
    named = {items[r.index]["campaign_id"] for r in result.results if r.status == "applied"}
    # As the event model read them (str_strip_whitespace, then the UUID): an applied event's raw id may
    # carry spaces around it. A UUID parse per campaign, not per event.
    return {canonical_uuid(campaign_id.strip()) for campaign_id in named}


def _found(phones: dict[tuple[str, str], str | InvalidPhone]) -> set[tuple[str, str]]:
    """The (campaign id, contact identity) pairs of the numbers that are valid."""
    return {(campaign_id, phone) for (campaign_id, _), phone in phones.items() if isinstance(phone, str)}


def _e164(phone: str, region: str) -> str | InvalidPhone:
    """The contact identity of an event's phone (E.164 plus any ';ext='), or why it is not one.

    The rules addContacts applies (campaigns.phones.normalize, its fast path included); `region`
    is the campaign's default_region, for numbers written without +country.
    """
    try:
        return normalize(phone, region)
    except InvalidPhone as exc:
        return exc


def _load(
    conn: Connection,
    account_id: str,
    parsed: list[CallEventIn | str],
    phones: dict[tuple[str, str], str | InvalidPhone],
    by_phone: dict[tuple[str, str], int],
) -> tuple[Batch, list[Resolved | str]]:
    """Read (and lock) everything the account's events touch, in an order that cannot deadlock."""
    valid = [ev for ev in parsed if isinstance(ev, CallEventIn)]
    resolved = [ev if isinstance(ev, str) else _resolve(ev, phones, by_phone) for ev in parsed]
    wanted = {r.contact_id for r in resolved if isinstance(r, Resolved) and r.contact_id is not None}
    with pipelined(conn):  # one round trip on PostgreSQL
        rules = queries.retry_rules(conn, account_id, {ev.campaign_id for ev in valid})
        contacts = queries.locked_contacts(conn, account_id, wanted)
        hashes = queries.stored_event_hashes(conn, account_id, {ev.event_id for ev in valid})
        calls = queries.locked_calls(conn, account_id, {ev.call_id for ev in valid})
        batch = Batch(
            account_id=account_id, rules=rules(), contacts=contacts(), calls=calls(), stored_hashes=hashes()
        )
    return batch, resolved


def _resolve(
    event: CallEventIn,
    phones: dict[tuple[str, str], str | InvalidPhone],
    by_phone: dict[tuple[str, str], int],
) -> Resolved:
    """The contact an event names: its contact_id, or the contact whose identity its phone is."""
    if event.contact_id is not None:
        return Resolved(event, event.contact_id)
    phone = phones[(event.campaign_id, event.phone or "")]
    if isinstance(phone, InvalidPhone):
        return Resolved(event, None, f"phone: {phone}")
    return Resolved(event, by_phone.get((event.campaign_id, phone)))


def _result(
    index: int, event_id: str | None, status: Status, error: str | None = None, reason: str | None = None
) -> EventResult:
    return EventResult(index=index, event_id=event_id, status=status, error=error, reason=reason)


def _one(batch: Batch, index: int, item: Any, entry: Resolved | str) -> EventResult:
    """Apply one event to the batch's in-memory state, or say why not."""
    if isinstance(entry, str):
        return _result(index, raw_event_id(item), "rejected", "VALIDATION_ERROR", entry)
    event = entry.event
    stored = batch.stored_hashes.get(event.event_id)
    if stored is not None:
        if stored == event.body_hash():
            return _result(index, event.event_id, "duplicate")
        return _result(
            index, event.event_id, "rejected", "CONFLICT", "event_id already used with a different body"
        )
    if event.campaign_id not in batch.rules:
        return _result(index, event.event_id, "rejected", "NOT_FOUND", "campaign not found")
    if entry.problem:
        return _result(index, event.event_id, "rejected", "VALIDATION_ERROR", entry.problem)
    owner = batch.contacts.get(entry.contact_id) if entry.contact_id is not None else None
    if owner is None or owner[0] != event.campaign_id:
        return _result(index, event.event_id, "rejected", "NOT_FOUND", "contact not found in this campaign")
    call = batch.calls.get(event.call_id)
    happened = event.lifecycle_event()
    transition = lifecycle.apply(owner[1], call, happened, batch.rules[event.campaign_id])
    if transition.effect == "rejected":
        return _result(index, event.event_id, "rejected", "CONFLICT", transition.reason)
    _keep(batch, event, happened.occurred_at, transition, is_new_call=call is None)
    if transition.effect == "applied":
        moved(EventApplied(owner[1], call, transition), _delta(batch, event.campaign_id))
    return _result(index, event.event_id, "applied", reason=transition.reason)


def _keep(
    batch: Batch, event: CallEventIn, occurred_at: int, transition: lifecycle.Transition, is_new_call: bool
) -> None:
    """Record an accepted event's effects in the batch."""
    body_hash = event.body_hash()
    batch.stored_hashes[event.event_id] = body_hash
    batch.events.append(
        {
            "account_id": batch.account_id,
            "event_id": event.event_id,
            "body_hash": body_hash,
            "campaign_id": event.campaign_id,
            "call_id": event.call_id,
            "type": event.type,
            "occurred_at": occurred_at,
            "received_at": now_ms(),
            "effect": transition.effect,
        }
    )
    if transition.effect != "applied":
        return
    if transition.contact != batch.contacts[transition.contact.contact_id][1]:
        batch.contacts[transition.contact.contact_id] = (event.campaign_id, transition.contact)
        batch.changed_contacts.add(transition.contact.contact_id)
    if transition.call is not None:
        batch.calls[event.call_id] = transition.call
        if is_new_call:
            batch.new_calls[event.call_id] = event.campaign_id
        else:
            batch.changed_calls.add(event.call_id)
    if transition.start_raised:
        batch.later_starts.add(event.campaign_id)


def _delta(batch: Batch, campaign_id: str) -> CounterDelta:
    """The counter deltas the batch gathers for one campaign."""
    delta = batch.deltas.get(campaign_id)
    if delta is None:
        delta = batch.deltas[campaign_id] = CounterDelta()
    return delta


def _write_all(conn: Connection, batch: Batch, slot: int) -> None:
    """Write the batch's rows and counter deltas (inside `pipelined`: one round trip on PostgreSQL)."""
    queries.insert_events(conn, batch.events)
    queries.save_contacts(conn, (batch.contacts[cid][1] for cid in sorted(batch.changed_contacts)))
    queries.insert_calls(
        conn, batch.account_id, ((cid, batch.calls[call_id]) for call_id, cid in batch.new_calls.items())
    )
    queries.save_calls(
        conn, batch.account_id, (batch.calls[c] for c in sorted(batch.changed_calls - set(batch.new_calls)))
    )
    for campaign_id, delta in batch.deltas.items():
        counters.write(conn, batch.account_id, campaign_id, slot, delta)
    for campaign_id in sorted(batch.later_starts):  # after the calls and the slot are written
        counters.redo_first_call(conn, campaign_id, slot)
