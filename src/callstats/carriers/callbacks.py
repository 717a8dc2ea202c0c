"""Carrier callbacks: verified, kept raw with their verdict, applied as call events; listed when
unmatched, and replayed.

A callback's way from the wire (carriers/routes.py) to the commit:

1. the connection its URL names, with its secret opened (404 when unknown, deleted or of another
   provider);
2. its signature, checked as the platform's own SDK checks it (403, nothing stored, when it fails);
3. the provider module (twilio.py, retell.py, vapi.py: no I/O) says what it means: `CallFacts`;
4. its events go through the write path's group commit, as recordCallEvents' do
   (calls/group.py), for the connection's account, with a `CallbackReceipt`: the raw callback and
   its verdict are written in the same transaction as the events. A callback is stored with what
   it did, or not at all (and the platform, which got no 2xx, sends it again).

A callback that cannot become events (an unknown status, no campaign named, a message that changes
no number) is stored alone, with its verdict. Verdicts: `applied` (an event of it changed the
campaign, or was accepted without changing it), `duplicate` (all its events were stored already:
a redelivery), `unmatched` (with the reason: the campaign or contact unknown to this account, an
unknown status, a state the event conflicts with) and `ignored` (a message that changes no number,
such as Retell's call_analyzed).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qs

import orjson
from anyio.to_thread import run_sync
from sqlalchemy import Connection, RowMapping

from callstats.calls.group import GroupCommit
from callstats.calls.schemas import EventResult
from callstats.calls.service import WriteRequest, Written
from callstats.carriers import queries, retell, twilio, vapi
from callstats.carriers.facts import CallFacts, integer
from callstats.carriers.public_url import webhook_url
from callstats.carriers.schemas import UnmatchedCallback
from callstats.carriers.service import LiveConnections, WebhookConnection, webhook_connection
from callstats.clock import now_ms
from callstats.db.engine import Database
from callstats.errors import Forbidden, NotFound
from callstats.ids import canonical_uuid
from callstats.pages import decode_cursor, encode_cursor
from callstats.sealing import SecretBox
from callstats.stats.response import iso_utc

KEPT_HEADERS: Final = (
    "content-type",
    "user-agent",
    "x-twilio-signature",
    "x-twilio-webhooks-signature-settings",
    "i-twilio-idempotency-token",
    "x-retell-signature",
    "x-vapi-signature",
)
"""The headers stored with a raw callback (never Authorization or x-vapi-secret: they hold the secret)."""

SECRET_REMOVED: Final = "[secret removed]"
"""What a stored callback holds where the platform sent the connection's secret (without_secret)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_REDELIVERED: Final = "event_id already used with a different body"  # calls.service's CONFLICT reason


class SignatureInvalid(Forbidden):
    """The callback's signature does not hold for its connection's secret: nothing is stored."""

    default_message = "Callback signature missing, expired or not valid for this connection"


class CallbackNotFound(NotFound):
    """No stored callback with this id for this account."""

    default_message = "Callback not found"


class Inbound(NamedTuple):
    """One callback as it arrived: the provider and connection its path names, the raw query string,
    its headers (lower-case names), its raw body, when it arrived (epoch ms), the public base URL
    it was sent to (carriers.public_url) and its path as sent, escapes and letter case kept (None:
    the connection's webhook path as callstats writes it)."""

    provider: str
    connection_id: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    received_ms: int
    base: str
    path: str | None = None


class Verdict(NamedTuple):
    """What a stored callback did: its id, `applied`, `duplicate`, `unmatched` or `ignored`, why
    (unmatched only), and the campaigns whose numbers it changed (for the live feed)."""

    callback_id: str
    verdict: str
    reason: str | None = None
    campaigns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CallbackReceipt:
    """The raw callback to store with the verdict its events earn (calls.service.Receipt): inserted,
    or, for a replay, the stored row updated."""

    row: dict[str, Any]
    replay: bool = False

    def write(self, conn: Connection, written: Written) -> None:
        """Store the callback with the verdict `written` (its events' outcome) gives it."""
        verdict, reason = verdict_of(written)
        _store(conn, self.row, verdict, reason, self.replay)


def signature_holds(secret: str, inbound: Inbound, form: twilio.Params | None = None) -> bool:
    """The provider's own check: Twilio's X-Twilio-Signature over the URL requested (the public base,
    the path as sent, the query) and the form (twilio.signature_valid), Retell's x-retell-signature
    over the body within its time tolerance (retell.signature_valid), Vapi's Bearer token, HMAC or
    legacy secret (vapi.authenticated). `form` is a Twilio body already parsed (twilio.form_params)."""
    headers = inbound.headers
    if inbound.provider == twilio.PROVIDER:
        # The URL as requested, as Twilio's validator is given it: a webhook URL written with the id in
        # capitals or with escapes routes here too, and Twilio signed it as written.
        url = inbound.base + (inbound.path or webhook_url("", inbound.provider, inbound.connection_id))
        url += f"?{inbound.query}" if inbound.query else ""
        params = form if form is not None else twilio.form_params(inbound.body)
        signature, settings = (
            headers.get("x-twilio-signature"),
            headers.get("x-twilio-webhooks-signature-settings"),
        )
        return twilio.signature_valid(secret, url, params, signature, settings)
    if inbound.provider == retell.PROVIDER:
        return retell.signature_valid(
            secret, inbound.body, headers.get("x-retell-signature"), inbound.received_ms
        )
    return vapi.authenticated(secret, headers, inbound.body)


def facts_of(
    provider: str,
    body: bytes,
    received_ms: int,
    outcome_map: Mapping[str, str],
    form: twilio.Params | None = None,
) -> CallFacts:
    """What a verified callback says (the provider module's `facts`); a JSON body that does not parse
    to an object is unmatched. `form` is a Twilio body already parsed (twilio.form_params)."""
    if provider == twilio.PROVIDER:
        return twilio.facts(form if form is not None else twilio.form_params(body), received_ms, outcome_map)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        return CallFacts(provider, "", unmatched="body is not a JSON object")
    if provider == retell.PROVIDER:
        return retell.facts(payload, received_ms, outcome_map)
    return vapi.facts(payload, received_ms, outcome_map)


def event_items(facts: CallFacts, query: str) -> list[dict[str, Any]] | str:
    """The recordCallEvents items a callback's facts amount to (none for a message that changes no
    number, whether or not it names a campaign), or why there are none.

    The campaign is `campaign_id` in the webhook URL's query string, else in the call's metadata;
    the contact `contact_id` there, else in the metadata, else the dialed number (normalized to
    E.164 in the campaign's region by the write path, as for any event).
    """
    if facts.unmatched:
        return facts.unmatched
    if not facts.events:  # changes no number (call_analyzed, a Vapi transcript): needs no campaign
        return []
    named = parse_qs(query, keep_blank_values=True)
    campaign_id = _first(named, "campaign_id") or facts.campaign_id
    if not campaign_id:
        return "no campaign_id in the webhook URL's query string or the call's metadata"
    contact = _first(named, "contact_id") or facts.contact_id
    if contact is not None:
        address: dict[str, Any] = {
            "contact_id": integer(contact) if integer(contact) is not None else contact
        }
    elif facts.phone:
        address = {"phone": facts.phone}
    else:
        return "no contact_id and no dialed number to find the contact by"
    return [
        {
            "event_id": event.event_id,
            "campaign_id": campaign_id,
            **address,
            "call_id": facts.call_id,
            "type": event.type,
            "outcome": event.outcome,
            **(
                {"raw_outcome": facts.raw_outcome} if event.type == "call.ended" and facts.raw_outcome else {}
            ),
            "duration_seconds": event.duration_seconds,
            "occurred_at": _EPOCH + timedelta(milliseconds=event.occurred_at_ms),
        }
        for event in facts.events
    ]


def verdict_of(written: Written) -> tuple[str, str | None]:
    """A callback's verdict from its events' outcome: applied if any event was applied, duplicate if
    every event was stored before (a redelivery; one whose body differs only by the time it was
    received counts too), else unmatched with the first rejection's reason."""
    results = written.result.results if written.result is not None else []
    if any(r.status == "applied" for r in results):
        return "applied", None
    rejected = [r for r in results if r.status == "rejected" and r.reason != _REDELIVERED]
    if not rejected:
        return "duplicate", None
    return "unmatched", _reason(rejected[0])


def _reason(rejected: EventResult) -> str:
    """An event's rejection in the words of an unmatched callback."""
    if rejected.error == "NOT_FOUND" and rejected.reason == "campaign not found":
        return "unknown campaign (none with this id in the connection's account)"
    if rejected.error == "NOT_FOUND":
        return "no such contact in this campaign"
    if rejected.error == "CONFLICT":
        return f"conflicting state: {rejected.reason}"
    return f"not a valid event: {rejected.reason}"


def _first(named: Mapping[str, list[str]], name: str) -> str | None:
    values = named.get(name)
    return values[0] if values and values[0] else None


def raw_row(inbound: Inbound, account_id: str, facts: CallFacts) -> dict[str, Any]:
    """The columns of a callback's stored row, verdict aside (its campaign when it names a UUID)."""
    named = _first(parse_qs(inbound.query, keep_blank_values=True), "campaign_id") or facts.campaign_id
    kept = {name: inbound.headers[name] for name in KEPT_HEADERS if name in inbound.headers}
    return {
        "id": str(uuid.uuid4()),
        "account_id": account_id,
        "connection_id": inbound.connection_id,
        "provider": inbound.provider,
        "campaign_id": _uuid_or_none(named),
        "call_id": (facts.call_id or None) and facts.call_id[:128],
        "received_at": inbound.received_ms,
        "query": inbound.query,
        "headers": orjson.dumps(kept).decode(),
        "body": inbound.body.decode("utf-8", "replace"),
    }


def without_secret(row: dict[str, Any], secret: str) -> dict[str, Any]:
    """The row with the connection's secret replaced by SECRET_REMOVED wherever the platform echoed it
    (a Vapi message may carry the assistant's server secret): it is never stored or listed in clear.
    A replay reads the same facts from the body: no provider module reads a secret from it."""
    for column in ("query", "headers", "body"):
        if secret and secret in row[column]:
            row[column] = row[column].replace(secret, SECRET_REMOVED)
    return row


def _uuid_or_none(value: str | None) -> str | None:
    try:
        return canonical_uuid(value.strip()) if value else None
    except ValueError:
        return None


def _store(conn: Connection, row: dict[str, Any], verdict: str, reason: str | None, replay: bool) -> None:
    applied_at = now_ms() if verdict == "applied" else None
    if replay and verdict != "applied" and row.get("verdict") == "applied":
        return  # a replay of an applied callback keeps its verdict and applied_at (it did apply)
    if replay:
        queries.update_callback(conn, row["account_id"], row["id"], verdict, reason, applied_at)
    else:
        queries.insert_callback(conn, {**row, "verdict": verdict, "reason": reason, "applied_at": applied_at})


def store_alone(db: Database, row: dict[str, Any], verdict: str, reason: str | None, replay: bool) -> None:
    """Store a callback that has no events to apply, in a transaction of its own."""
    db.write(lambda conn: _store(conn, row, verdict, reason, replay))


async def receive(
    db: Database, groups: GroupCommit, connections: LiveConnections, inbound: Inbound
) -> Verdict:
    """A webhook's use case: verify the callback, store it raw and apply its events (module docstring).

    Raises ConnectionNotFound (404) and SignatureInvalid (403), nothing stored; what the write raises
    (the database unreachable: 503, nothing stored, so the platform retries).
    """
    connection = await connections.get(inbound.provider, inbound.connection_id)
    form = twilio.form_params(inbound.body) if inbound.provider == twilio.PROVIDER else None  # parsed once
    if not signature_holds(connection.secret, inbound, form):
        raise SignatureInvalid()
    facts = facts_of(inbound.provider, inbound.body, inbound.received_ms, connection.outcome_map, form)
    row = without_secret(raw_row(inbound, connection.account_id, facts), connection.secret)
    return await apply(groups, db, row, facts, replay=False)


async def replay(
    db: Database, groups: GroupCommit, box: SecretBox, account_id: str, callback_id: str
) -> Verdict:
    """Apply a stored callback again (after its cause was fixed: a contact added, a campaign created,
    an outcome override set), with its connection's current outcome_map; its row takes the new verdict,
    except that an applied row stays applied (the answer says what this replay did: duplicate).

    Raises CallbackNotFound (404) for another account's or an unknown callback and ConnectionNotFound
    (404) when its connection was deleted since.
    """
    row, connection = await run_sync(_stored, db, box, account_id, callback_id)
    facts = facts_of(row["provider"], row["body"].encode(), row["received_at"], connection.outcome_map)
    return await apply(groups, db, row, facts, replay=True)


def _stored(
    db: Database, box: SecretBox, account_id: str, callback_id: str
) -> tuple[dict[str, Any], WebhookConnection]:
    with db.read() as conn:
        stored = queries.callback(conn, account_id, callback_id)
        if stored is None:
            raise CallbackNotFound()
        connection = webhook_connection(conn, box, stored["provider"], stored["connection_id"])
    return dict(stored), connection


def unmatched(
    db: Database, account_id: str, connection_id: str | None, limit: int, cursor: str | None
) -> tuple[list[UnmatchedCallback], str | None]:
    """One page of the account's unmatched callbacks (of one connection, or all), newest first, and
    the cursor of the next page (None on the last): keyset pagination on (received_at, id).

    Raises ValidationFailed (400) for a cursor this API did not give.
    """
    after = decode_cursor(cursor) if cursor else None
    with db.read() as conn:
        rows = queries.unmatched_page(conn, account_id, connection_id, limit + 1, after)
    page = [_listed(row) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, encode_cursor(last["received_at"], last["id"]) if last is not None else None


def _listed(row: RowMapping) -> UnmatchedCallback:
    return UnmatchedCallback(
        callback_id=row["id"],
        connection_id=row["connection_id"],
        provider=row["provider"],
        campaign_id=row["campaign_id"],
        call_id=row["call_id"],
        received_at=iso_utc(row["received_at"]) or "",
        reason=row["reason"],
        query=row["query"],
        body=row["body"],
    )


async def apply(
    groups: GroupCommit, db: Database, row: dict[str, Any], facts: CallFacts, replay: bool
) -> Verdict:
    """Apply a verified callback's events with its receipt (or store it alone when it has none)."""
    items = event_items(facts, row["query"])
    if isinstance(items, str) or not items:
        verdict, reason = ("unmatched", items) if isinstance(items, str) else ("ignored", None)
        await run_sync(store_alone, db, row, verdict, reason, replay)
        return Verdict(row["id"], verdict, reason)
    request = WriteRequest(items, account_id=row["account_id"], receipt=CallbackReceipt(row, replay))
    written = await groups.record(request)
    if written.error is not None:
        raise written.error
    verdict, reason = verdict_of(written)
    return Verdict(row["id"], verdict, reason, written.campaigns)
