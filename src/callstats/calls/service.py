"""Event ingestion, top-down: parse, resolve, apply the lifecycle, write, answer.

`record_group` writes several requests in one transaction (calls/group.py gathers them; the demo
sends one), each answered as if it had run alone, in arrival order (docs/architecture.md walks
the same steps, from the HTTP request on):

- parse (no I/O): each raw event validated on its own (`parse_event`); phones written with
  +country normalized to a contact identity before the transaction;
- resolve (one round trip, one more when a phone lacks +country): each request's writer checked
  (its key, in the transaction), the contacts the phones name, the campaigns' regions for
  national numbers;
- load (one round trip per account): the rules, contacts, calls and stored event hashes the
  events touch, read and locked set-wise in one order, and the account's live webhook endpoints;
- apply: each event through `lifecycle.apply` in memory, in order; `counters.moved` gathers the
  counter deltas; a rejected event changes nothing;
- write (one round trip): events, contacts, calls and counter deltas, then any request's receipt;
- alert (nothing for an account without webhook endpoints, read with the load): the messages the new
  counters cause, written to the outbox in the same transaction (alerts/outbox.py);
- answer: one `Written` per request (its result, or the error it answers with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from sqlalchemy import Connection

from callstats.accounts.service import writer_accounts
from callstats.alerts import queries as alert_queries
from callstats.alerts.outbox import queue_alerts
from callstats.calls import queries
from callstats.calls.schemas import (
    CallEventIn,
    EventResult,
    EventRules,
    RecordEventsResult,
    parse_event,
    raw_event_id,
)
from callstats.core import lifecycle
from callstats.core.counters import CounterDelta, EventApplied, moved
from callstats.core.lifecycle import CallState, ContactState, RetryRules
from callstats.core.phones import InvalidPhone, normalize
from callstats.db import counters
from callstats.db.driver import pipelined
from callstats.db.engine import Database
from callstats.errors import ApiError
from callstats.ids import canonical_uuid

Status = Literal["applied", "duplicate", "rejected"]
Phones = dict[tuple[str, str], str | InvalidPhone]  # (campaign id, phone as sent) -> contact identity


class Receipt(Protocol):
    """What a request writes beside its events, in the same transaction, from its outcome: a carrier's
    raw callback and its verdict (carriers/). Written only if the transaction commits."""

    def write(self, conn: Connection, written: Written) -> None:
        """Write the receipt for the request's outcome `written`."""


@dataclass(frozen=True)
class WriteRequest:
    """One request to write: its raw events and who sends them.

    A request from the API names its write key (`plaintext`, `key_id`), checked inside the
    transaction; a trusted caller (the demo, a verified carrier callback) names its `account_id`.
    `problem` is why the body is unusable, told only to a valid write key (the request then writes
    nothing). `receipt`, when given, is written in the same transaction once the events are applied.
    """

    items: list[Any]
    plaintext: str = ""
    key_id: str = ""
    account_id: str | None = None
    problem: ApiError | None = None
    receipt: Receipt | None = None


@dataclass(frozen=True)
class Written:
    """One request's outcome: its result and the campaigns it applied events to, or its error."""

    result: RecordEventsResult | None = None
    campaigns: frozenset[str] = frozenset()
    error: Exception | None = None


@dataclass
class Batch:
    """What one account's events read in the transaction, and what they will write."""

    account_id: str
    received_at: int  # epoch ms, the server's clock
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
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # the account's live webhook endpoints


class Resolved(NamedTuple):
    """A valid event and the contact id it names (None when its phone names no contact).

    A named tuple, not a frozen dataclass: one is built per event, and a tuple's is the cheaper.
    """

    event: CallEventIn
    contact_id: int | None
    problem: str | None = None


@dataclass
class Parsed:
    """A group once parsed: each request's events (valid, or why not) and the phones they name."""

    requests: list[WriteRequest]
    events: list[list[CallEventIn | str]]
    phones: Phones  # numbers written with +country, normalized already
    national: set[tuple[str, str]]  # (campaign id, phone) written without +country: need the region
    default_region: str  # for a campaign without a region of its own
    received_at: int  # the server's clock when the group was parsed (epoch ms): its events' received_at


@dataclass
class PhoneBook:
    """What resolving the phones found: each (campaign id, phone as sent) -> contact identity (or why
    it is not one), and each (campaign id, identity) -> the id of the contact that has it."""

    identities: Phones
    contact_ids: dict[tuple[str, str], int]

    def contact_of(self, event: CallEventIn) -> Resolved:
        """The contact an event names: its contact_id, or the contact whose identity its phone is."""
        if event.contact_id is not None:
            return Resolved(event, event.contact_id)
        phone = self.identities[(event.campaign_id, event.phone or "")]
        if isinstance(phone, InvalidPhone):
            return Resolved(event, None, f"phone: {phone}")
        return Resolved(event, self.contact_ids.get((event.campaign_id, phone)))


def record_events(db: Database, account_id: str, items: list[Any], rules: EventRules) -> RecordEventsResult:
    """Apply a trusted caller's raw events for `account_id`; each is applied, a duplicate, or rejected.

    Raises what the transaction raises (the database unreachable, a value it refused).
    """
    written = record_group(db, [WriteRequest(items, account_id=account_id)], rules)[0]
    if written.error is not None:
        raise written.error
    assert written.result is not None
    return written.result


def record_group(db: Database, requests: list[WriteRequest], rules: EventRules) -> list[Written]:
    """Several requests' events in one transaction, each answered as if it had run alone, in order.

    A request's events only read and change its own account's rows. An exception raised (rather
    than answered in a `Written`) fails the whole transaction: nothing of any request is stored.
    """
    parsed = parse(requests, rules)
    return db.write(lambda conn: _transaction(conn, db.pick_slot(), parsed))


def parse(requests: list[WriteRequest], rules: EventRules) -> Parsed:
    """Parse, no I/O: every event validated on its own; +country phones normalized."""
    received_at = rules.clock()  # one clock reading for every event of the group
    window = rules.window(received_at)
    events = [[parse_event(item, rules, window) for item in r.items] for r in requests]
    named = {
        (ev.campaign_id, ev.phone) for es in events for ev in es if isinstance(ev, CallEventIn) and ev.phone
    }
    # '+country' numbers read the same in every region: normalized before the transaction
    phones = {pair: _e164(pair[1], rules.default_region) for pair in named if pair[1][0] == "+"}
    national = {pair for pair in named if pair[1][0] != "+"}
    return Parsed(requests, events, phones, national, rules.default_region, received_at)


def _transaction(conn: Connection, slot: int, parsed: Parsed) -> list[Written]:
    """Resolve, load, apply, write and answer, in the group's transaction."""
    writers, book = _resolve(conn, parsed)
    batches, entries = _load_accounts(conn, parsed, writers, book)
    written = [
        _apply_request(batches[writer], request, entries[n])
        if isinstance(writer, str)
        else Written(error=writer)
        for n, (request, writer) in enumerate(zip(parsed.requests, writers, strict=True))
    ]
    with pipelined(conn):  # one round trip on PostgreSQL
        for batch in batches.values():
            _write_batch(conn, batch, slot)
        for request, outcome in zip(parsed.requests, written, strict=True):
            if request.receipt is not None:
                request.receipt.write(conn, outcome)
    for batch in batches.values():  # the alerts these counters cause, queued in this transaction
        queue_alerts(conn, batch.account_id, batch.deltas, batch.endpoints, parsed.received_at)
    return written


def _resolve(conn: Connection, parsed: Parsed) -> tuple[list[str | ApiError], PhoneBook]:
    """Resolve: each request's account (or why it may not write), every phone's contact identity and
    the contact ids they name (one round trip; one more for numbers without +country)."""
    with pipelined(conn):  # the phones' contacts (any account's), regions and keys: one round trip
        sent = queries.contact_ids_by_phone(conn, _found(parsed.phones))
        regions = queries.campaign_regions(conn, {campaign_id for campaign_id, _ in parsed.national})
        writers = _writers(conn, parsed.requests)
        by_phone = sent()
        region_of = regions()
    phones = parsed.phones | {
        (c, raw): _e164(raw, region_of.get(c, parsed.default_region)) for c, raw in parsed.national
    }
    if parsed.national:  # numbers without +country: read in their campaign's region, one more round trip
        with pipelined(conn):
            by_phone |= queries.contact_ids_by_phone(conn, _found(phones) - _found(parsed.phones))()
    return writers, PhoneBook(phones, by_phone)


def _writers(conn: Connection, requests: list[WriteRequest]) -> list[str | ApiError]:
    """Each request's account, or why it may not write: its key checked in the transaction (a trusted
    caller's account as given); a bad body is told only to a valid write key."""
    keyed = [r for r in requests if r.account_id is None]
    checked = iter(writer_accounts(conn, [(r.plaintext, r.key_id) for r in keyed]) if keyed else [])
    writers: list[str | ApiError] = []
    for request in requests:
        writer = request.account_id if request.account_id is not None else next(checked)
        writers.append(request.problem if isinstance(writer, str) and request.problem else writer)
    return writers


def _load_accounts(
    conn: Connection,
    parsed: Parsed,
    writers: list[str | ApiError],
    book: PhoneBook,
) -> tuple[dict[str, Batch], list[list[Resolved | str]]]:
    """Load: each writing account's batch, loaded once for all its requests (accounts in one lock
    order), and each request's events with the contacts they name."""
    batches: dict[str, Batch] = {}
    entries: list[list[Resolved | str]] = [[] for _ in parsed.requests]
    for account_id in sorted({w for w in writers if isinstance(w, str)}):
        mine = [n for n, w in enumerate(writers) if w == account_id]
        events = [ev for n in mine for ev in parsed.events[n]]
        batches[account_id], resolved = _load(conn, account_id, events, book, parsed.received_at)
        start = 0
        for n in mine:
            entries[n], start = resolved[start : start + len(parsed.events[n])], start + len(parsed.events[n])
    return batches, entries


def _apply_request(batch: Batch, request: WriteRequest, entries: list[Resolved | str]) -> Written:
    """Apply, for one request: its events applied to its account's batch in order; its answer."""
    results = [_one(batch, index, request.items[index], entry) for index, entry in enumerate(entries)]
    result = RecordEventsResult.tallied(results)
    return Written(result, _applied_campaigns(request.items, result))


def _applied_campaigns(items: list[Any], result: RecordEventsResult) -> frozenset[str]:
    """The campaigns a request applied events to (what the change feed must hear about)."""
    named = {items[r.index]["campaign_id"] for r in result.results if r.status == "applied"}
    # As the event model read them (str_strip_whitespace, then the UUID): an applied event's raw id may
    # carry spaces around it. A UUID parse per campaign, not per event.
    return frozenset(canonical_uuid(campaign_id.strip()) for campaign_id in named)


def _found(phones: Phones) -> set[tuple[str, str]]:
    """The (campaign id, contact identity) pairs of the numbers that are valid."""
    return {(campaign_id, phone) for (campaign_id, _), phone in phones.items() if isinstance(phone, str)}


def _e164(phone: str, region: str) -> str | InvalidPhone:
    """The contact identity of an event's phone (E.164 plus any ';ext='), or why it is not one.

    The rules addContacts applies (core.phones.normalize, its fast path included); `region`
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
    book: PhoneBook,
    received_at: int,
) -> tuple[Batch, list[Resolved | str]]:
    """Read (and lock) everything the account's events touch, in an order that cannot deadlock."""
    valid = [ev for ev in parsed if isinstance(ev, CallEventIn)]
    resolved = [ev if isinstance(ev, str) else book.contact_of(ev) for ev in parsed]
    wanted = {r.contact_id for r in resolved if isinstance(r, Resolved) and r.contact_id is not None}
    with pipelined(conn):  # one round trip on PostgreSQL
        rules = queries.retry_rules(conn, account_id, {ev.campaign_id for ev in valid})
        contacts = queries.locked_contacts(conn, account_id, wanted)
        hashes = queries.stored_event_hashes(conn, account_id, {ev.event_id for ev in valid})
        calls = queries.locked_calls(conn, account_id, {ev.call_id for ev in valid})
        endpoints = alert_queries.endpoints_sent(conn, account_id)
        batch = Batch(
            account_id=account_id,
            received_at=received_at,
            rules=rules(),
            contacts=contacts(),
            calls=calls(),
            stored_hashes=hashes(),
            endpoints=endpoints(),
        )
    return batch, resolved


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
        moved(EventApplied(owner[1], call, transition, batch.received_at), _delta(batch, event.campaign_id))
    return _result(index, event.event_id, "applied", reason=transition.reason)


def _keep(
    batch: Batch, event: CallEventIn, occurred_at: int, transition: lifecycle.Transition, is_new_call: bool
) -> None:
    """Record an accepted event (applied or no_change) and, when applied, its new states in the batch."""
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
            "received_at": batch.received_at,
            "effect": transition.effect,
        }
    )
    if transition.effect == "applied":
        _keep_states(batch, event, transition, is_new_call)


def _keep_states(
    batch: Batch, event: CallEventIn, transition: lifecycle.Transition, is_new_call: bool
) -> None:
    """An applied transition's contact and call, marked for writing."""
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


def _write_batch(conn: Connection, batch: Batch, slot: int) -> None:
    """Write: the batch's rows and counter deltas (inside `pipelined`: one round trip on PostgreSQL)."""
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
