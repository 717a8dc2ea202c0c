"""What the webhook acceptance tests share: an app with an account, a campaign and a carrier
connection; callbacks signed as each platform signs them (twilio's RequestValidator, retell-sdk's own
signing helper, Vapi's three schemes); the callbacks of one call of each outcome, as each platform
sends them; the orders to deliver them in; and a model of the numbers they must give.

The model is written from docs/semantics.md and the issue's mapping tables, never from callstats'
code: a call's outcome and talk time are what the test planned, and the contact states, breakdown,
durations and success rate are recomputed here with plain arithmetic.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from email.utils import format_datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

import httpx
from cryptography.fernet import Fernet
from pydantic import SecretStr
from retell.lib.webhook_auth import symmetric
from sqlalchemy import Table, func, select
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp
from callstats.config import Settings
from callstats.db.schema import call_events, carrier_callbacks
from tests.apps import serving

BASE_URL = "http://callstats.test"  # the in-process client's base (tests/apps.py)
SECRETS = {
    "twilio": "tw-auth-5c1e0b9a8d7f6e5d4c3b2a1908f7e6d5",  # a Twilio auth token's shape
    "retell": "key_a1b2c3d4e5f60718293a4b5c6d7e",  # a Retell API key's shape
    "vapi": "vapi-credential-secret-7f3e9a1c5b",
}
KEY = Fernet.generate_key().decode()
OUTCOMES = ("answered", "busy", "no_answer", "failed", "voicemail")
KINDS = ("answered", "busy", "no_answer", "voicemail", "failed", "canceled")
"""The calls every provider is tested with; `live` (started, never ended) besides."""
OUTCOME_OF_KIND = {
    "answered": "answered",
    "busy": "busy",
    "no_answer": "no_answer",
    "voicemail": "voicemail",
    "failed": "failed",
    "canceled": "failed",  # the issue: canceled -> failed
    "live": None,
}
T0 = 1_705_395_600_000  # 2024-01-16T09:00:00Z, when the first planned call starts
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def keyed(settings: Settings, **update: Any) -> Settings:
    """The test's settings with CALLSTATS_SECRET_KEY set (PostgreSQL needs one to store secrets)."""
    return settings.model_copy(update={"secret_key": SecretStr(KEY), **update})


# -- the app, a campaign and a connection ----------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """A campaign's retry rules (semantics.md: max_attempts 3, every failure retried, by default)."""

    max_attempts: int = 3
    retry_on: frozenset[str] = frozenset({"busy", "no_answer", "voicemail", "failed"})


@dataclass
class Hooked:
    """An app, a client, an account's write-key headers, a campaign and a connection to call."""

    app: CallstatsApp
    http: httpx.AsyncClient
    auth: dict[str, str]
    campaign_id: str
    provider: str
    connection_id: str
    secret: str

    @property
    def path(self) -> str:
        """The connection's webhook path."""
        return f"/webhooks/{self.provider}/{self.connection_id}"

    def url(self, base: str = BASE_URL, **query: str) -> str:
        """The webhook URL under `base` with `query`; Twilio and Retell name the campaign there (Vapi
        carries it in the call's metadata)."""
        if not query and self.provider != "vapi":
            query = {"campaign_id": self.campaign_id}
        return base + self.path + ("?" + urlencode(query) if query else "")


async def create_campaign(
    http: httpx.AsyncClient, auth: dict[str, str], phones: Sequence[str], rules: Rules = Rules()
) -> str:
    """A campaign with these rules and contacts, through the API; its id."""
    body = {"name": "carrier calls", "max_attempts": rules.max_attempts, "retry_on": sorted(rules.retry_on)}
    created = await http.post("/createCampaign", json=body, headers=auth)
    assert created.status_code == 201, created.text
    campaign_id: str = created.json()["data"]["campaign_id"]
    if phones:
        added = await http.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
        )
        assert added.status_code == 200 and added.json()["data"]["accepted"] == len(phones), added.text
    return campaign_id


async def connect(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    provider: str,
    secret: str | None = None,
    outcome_map: dict[str, str] | None = None,
) -> str:
    """A new carrier connection's id (the provider's test secret unless given)."""
    body: dict[str, Any] = {"provider": provider, "secret": secret or SECRETS[provider]}
    if outcome_map is not None:
        body["outcome_map"] = outcome_map
    created = await http.post("/createCarrierConnection", json=body, headers=auth)
    assert created.status_code == 201, created.text
    connection_id: str = created.json()["data"]["connection_id"]
    return connection_id


@asynccontextmanager
async def hooked(
    settings: Settings,
    provider: str,
    phones: Sequence[str],
    rules: Rules = Rules(),
    outcome_map: dict[str, str] | None = None,
) -> AsyncIterator[Hooked]:
    """An app (settings keyed) with account acme, a campaign of `phones` and a `provider` connection."""
    async with serving(keyed(settings)) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme", "write").plaintext}
        campaign_id = await create_campaign(http, auth, phones, rules)
        connection_id = await connect(http, auth, provider, outcome_map=outcome_map)
        yield Hooked(app, http, auth, campaign_id, provider, connection_id, SECRETS[provider])


def phone(number: int) -> str:
    """The E.164 phone of planned contact `number` (0..9999)."""
    return f"+1415555{number:04d}"


# -- signing and delivering ------------------------------------------------------------------------


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it (the SDK's own RequestValidator)."""
    return str(RequestValidator(token).compute_signature(url, params))


def retell_signature(body: bytes, api_key: str, at_ms: int | None = None) -> str:
    """x-retell-signature as retell-sdk signs `body` (at `at_ms`, epoch ms; now by default)."""
    signature = symmetric["sign"](body.decode(), api_key, at_ms)
    assert isinstance(signature, str)
    return signature


def retell_verdict(body: bytes, api_key: str, header: str) -> bool:
    """retell-sdk's own verify of `header` for `body`, by the current clock."""
    verdict = symmetric["verify"](body.decode(), api_key, header)
    assert isinstance(verdict, bool)
    return verdict


def vapi_headers(scheme: str, secret: str, body: bytes) -> dict[str, str]:
    """The credential Vapi sends, by the scheme the user set up: `bearer`, `hmac` or `secret`."""
    if scheme == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    if scheme == "hmac":
        return {"x-vapi-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    return {"x-vapi-secret": secret}


VAPI_SCHEMES = ("bearer", "hmac", "secret")


def json_body(payload: dict[str, Any]) -> bytes:
    """A JSON webhook body as the platforms send it: compact, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class Callback(NamedTuple):
    """One callback a platform sends about one call: its form (Twilio) or JSON payload, its name within
    the call (`ringing`, `call_ended`, ...) and whether it carries call events (`moves`; Retell's
    call_analyzed and Vapi's status `ended` do not)."""

    call_id: str
    name: str
    payload: dict[str, Any]
    moves: bool = True


async def deliver(hook: Hooked, callback: Callback) -> httpx.Response:
    """Post `callback` to the hook's connection, signed with its secret as its platform signs it.
    Vapi's scheme is picked from the body, so a redelivery uses the same one."""
    if hook.provider == "twilio":
        url, params = hook.url(), callback.payload
        signature = twilio_signature(hook.secret, url, params)
        return await hook.http.post(url, data=params, headers={"X-Twilio-Signature": signature})
    body = json_body(callback.payload)
    if hook.provider == "retell":
        headers = {"x-retell-signature": retell_signature(body, hook.secret)}
    else:
        headers = vapi_headers(VAPI_SCHEMES[zlib.crc32(body) % 3], hook.secret, body)
    return await hook.http.post(
        hook.url(), content=body, headers={"content-type": "application/json", **headers}
    )


def assert_acknowledged(hook: Hooked, response: httpx.Response) -> None:
    """Twilio gets 204; Retell and Vapi 200 with the verdict."""
    if hook.provider == "twilio":
        assert response.status_code == 204, response.text
    else:
        assert response.status_code == 200, response.text
        assert response.json()["data"]["verdict"] in ("applied", "duplicate", "unmatched", "ignored")


# -- one call's callbacks, as each platform sends them ---------------------------------------------


class PlannedCall(NamedTuple):
    """A call the test makes: the outcome and talk time it must count (None: still live), and the
    callbacks its platform sends, in the order the platform emits them."""

    call_id: str
    outcome: str | None
    talk_seconds: int
    callbacks: tuple[Callback, ...]


def seconds_half_up(milliseconds: int) -> int:
    """Whole seconds of a duration in ms, half up (semantics.md rounds half up)."""
    return int((Decimal(milliseconds) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _rfc2822(at_ms: int) -> str:
    return format_datetime(_EPOCH + timedelta(milliseconds=at_ms))


def _iso(at_ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=at_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


TWILIO_MACHINES = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other")
TWILIO_PEOPLE = (None, "human", "unknown", None)  # AnsweredBy of an answered call: none without AMD


def twilio_call(call_id: str, to: str, kind: str, variant: int, at_ms: int) -> PlannedCall:
    """Twilio's status callbacks for one outbound call of `kind`. Even variants carry `Timestamp`; odd
    ones happen when received (so their redeliveries differ by that time alone)."""
    sequence = itertools.count(0)

    def status(name: str, after_s: int, **extra: str | None) -> Callback:
        params = {
            "AccountSid": "AC0123456789abcdef0123456789abcdef",
            "CallSid": call_id,
            "From": "+14155550000",
            "To": to,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            "CallStatus": name,
            "SequenceNumber": str(next(sequence)),
            "CallbackSource": "call-progress-events",
            **{k: v for k, v in extra.items() if v is not None},
        }
        if variant % 2 == 0:
            params["Timestamp"] = _rfc2822(at_ms + after_s * 1000)
        return Callback(call_id, name, params)

    talk = 30 + variant
    ringing = [status("initiated", 0), status("ringing", 2)]
    if kind == "answered":
        person = TWILIO_PEOPLE[variant % 4]
        ended = status("completed", 6 + talk, CallDuration=str(talk), AnsweredBy=person)
        return PlannedCall(call_id, "answered", talk, (*ringing, status("in-progress", 6), ended))
    if kind == "voicemail":
        machine = TWILIO_MACHINES[variant % 4]
        ended = status("completed", 26, CallDuration="20", AnsweredBy=machine)
        return PlannedCall(call_id, "voicemail", 0, (*ringing, status("in-progress", 6), ended))
    if kind == "live":
        return PlannedCall(call_id, None, 0, (*ringing, status("in-progress", 6)))
    if kind == "failed":
        return PlannedCall(call_id, "failed", 0, (ringing[0], status("failed", 1, CallDuration="0")))
    raw = {"busy": "busy", "no_answer": "no-answer", "canceled": "canceled"}[kind]
    outcome = OUTCOME_OF_KIND[kind]
    return PlannedCall(call_id, outcome, 0, (*ringing, status(raw, 20, CallDuration="0")))


RETELL_REASONS = {
    "answered": ("user_hangup", "agent_hangup", "call_transfer", "max_duration_reached"),
    "voicemail": ("voicemail_reached", "machine_detected"),
    "busy": ("dial_busy",),
    "no_answer": ("dial_no_answer",),
    "failed": ("dial_failed", "invalid_destination", "error_llm_websocket_open", "error_unknown"),
    "canceled": ("manual_stopped",),  # stopped through the API before it connected
}


def retell_call(call_id: str, to: str, kind: str, variant: int, at_ms: int) -> PlannedCall:
    """Retell's webhooks for one outbound call of `kind`: call_started for a connected call only (a
    person or a machine answered), call_ended, call_analyzed."""
    connected = kind in ("answered", "voicemail", "live")
    talk_ms = 15_000 + 250 * variant  # every quarter second, so half-up rounding shows
    end_ms = at_ms + talk_ms
    call: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": call_id,
        "agent_id": "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD",
        "from_number": "+14155550000",
        "to_number": to,
        "direction": "outbound",
        "metadata": {"batch": "acceptance"},
        "call_status": "ongoing" if connected else "not_connected",
    }
    if connected:
        call["start_timestamp"] = at_ms
    started = Callback(call_id, "call_started", {"event": "call_started", "call": call})
    if kind == "live":
        return PlannedCall(call_id, None, 0, (started,))
    reasons = RETELL_REASONS[kind]
    ended_call = {
        **call,
        "call_status": "ended" if connected else "error",
        "end_timestamp": end_ms,
        "disconnection_reason": reasons[variant % len(reasons)],
    }
    if connected:
        ended_call["duration_ms"] = talk_ms
    ended = Callback(call_id, "call_ended", {"event": "call_ended", "call": ended_call})
    analysis = {**ended_call, "call_analysis": {"call_successful": kind == "answered", "in_voicemail": False}}
    analyzed = Callback(call_id, "call_analyzed", {"event": "call_analyzed", "call": analysis}, moves=False)
    outcome = OUTCOME_OF_KIND[kind]
    talk = seconds_half_up(talk_ms) if outcome == "answered" else 0
    callbacks = (started, ended, analyzed) if connected else (ended, analyzed)
    return PlannedCall(call_id, outcome, talk, callbacks)


VAPI_REASONS = {
    "answered": (
        "customer-ended-call",
        "assistant-ended-call",
        "exceeded-max-duration",
        "assistant-forwarded-call",
    ),
    "voicemail": ("voicemail",),
    "busy": ("customer-busy",),
    "no_answer": ("customer-did-not-answer",),
    "failed": (
        "twilio-failed-to-connect-call",
        "call.start.error-get-transport",
        "pipeline-error-openai-llm-failed",
        "phone-call-provider-closed-websocket",
    ),
    "canceled": ("manually-canceled",),
}


def vapi_call(call_id: str, to: str, kind: str, variant: int, at_ms: int, campaign_id: str) -> PlannedCall:
    """Vapi's server messages for one outbound call of `kind`: status-updates (queued or ringing,
    in-progress when someone or something answered, ended) and the end-of-call-report. The campaign
    is named in the call's metadata (even variants) or its assistantOverrides' (odd ones)."""
    call: dict[str, Any] = {"id": call_id, "type": "outboundPhoneCall", "customer": {"number": to}}
    metadata = {"campaign_id": campaign_id}
    if variant % 2 == 0:
        call["metadata"] = metadata
    else:
        call["assistantOverrides"] = {"metadata": metadata}
    talk_ms = 60_000 + 250 * variant

    def update(status: str, after_ms: int) -> Callback:
        message = {"type": "status-update", "status": status, "timestamp": at_ms + after_ms, "call": call}
        return Callback(call_id, status, {"message": message}, moves=status != "ended")

    first = update("queued" if kind in ("failed", "canceled") else "ringing", 0)
    answered = kind in ("answered", "voicemail", "live")
    opening = (first, update("in-progress", 3_000)) if answered else (first,)
    if kind == "live":
        return PlannedCall(call_id, None, 0, opening)
    reasons = VAPI_REASONS[kind]
    started, ended = at_ms + 3_000, at_ms + 3_000 + talk_ms
    report = {
        "type": "end-of-call-report",
        "endedReason": reasons[variant % len(reasons)],
        "timestamp": ended + 500,
        "call": call,
        "startedAt": _iso(started),
        "endedAt": _iso(ended),
        "summary": "",
    }
    outcome = OUTCOME_OF_KIND[kind]
    talk = seconds_half_up(talk_ms) if outcome == "answered" else 0
    callbacks = (*opening, update("ended", 3_000 + talk_ms), Callback(call_id, "report", {"message": report}))
    return PlannedCall(call_id, outcome, talk, callbacks)


def planned_call(
    provider: str, call_id: str, to: str, kind: str, variant: int, at_ms: int, campaign_id: str
) -> PlannedCall:
    """One call of `kind` on `provider` (see twilio_call, retell_call, vapi_call)."""
    if provider == "twilio":
        return twilio_call(call_id, to, kind, variant, at_ms)
    if provider == "retell":
        return retell_call(call_id, to, kind, variant, at_ms)
    return vapi_call(call_id, to, kind, variant, at_ms, campaign_id)


# -- delivery orders -------------------------------------------------------------------------------


def every_order(call: PlannedCall) -> list[tuple[Callback, ...]]:
    """Every order of one call's callbacks (itertools.permutations)."""
    return list(itertools.permutations(call.callbacks))


def with_redeliveries(rng: random.Random, sequence: Sequence[Callback], share: float = 0.4) -> list[Callback]:
    """`sequence` with about `share` of its callbacks delivered once more, each copy somewhere after
    its original (a platform's retry)."""
    copies: dict[int, list[Callback]] = {}
    for index, callback in enumerate(sequence):
        if rng.random() < share:
            copies.setdefault(rng.randrange(index, len(sequence)), []).append(callback)
    return [sent for index, callback in enumerate(sequence) for sent in (callback, *copies.get(index, []))]


def interleaved(rng: random.Random, sequences: Sequence[Sequence[Callback]]) -> list[Callback]:
    """A random merge of the sequences, each kept in its own order (contacts' calls are independent;
    a contact's calls come one after the other)."""
    queues = [list(reversed(sequence)) for sequence in sequences if sequence]
    merged: list[Callback] = []
    while queues:
        index = rng.choices(range(len(queues)), weights=[len(q) for q in queues])[0]
        merged.append(queues[index].pop())
        if not queues[index]:
            queues.pop(index)
    return merged


# -- the model -------------------------------------------------------------------------------------


@dataclass
class CampaignModel:
    """The numbers semantics.md gives for contacts whose planned calls come in order (each contact's
    calls one after the other), under the campaign's rules. A call the rules refuse (its contact is
    final, in progress or out of attempts) is `refused`: its callbacks must be unmatched."""

    rules: Rules
    contacts: Sequence[Sequence[PlannedCall]]
    refused: set[str] = field(default_factory=set)

    def numbers(self) -> dict[str, Any]:
        """The eight getCampaignStats figures the issue names."""
        states: Counter[str] = Counter()
        breakdown = dict.fromkeys(OUTCOMES, 0)
        talk = answered = 0
        self.refused.clear()
        for calls in self.contacts:
            state, attempts, last = "pending", 0, None
            for call in calls:
                if state != "pending" or attempts >= self.rules.max_attempts:
                    self.refused.add(call.call_id)
                    continue
                attempts += 1
                if call.outcome is None:
                    state = "in_progress"
                    continue
                last = call.outcome
                if call.outcome == "answered":
                    state, talk, answered = "completed", talk + call.talk_seconds, answered + 1
                elif call.outcome in self.rules.retry_on and attempts < self.rules.max_attempts:
                    state = "pending"
                else:
                    state = "failed"
            states[state] += 1
            if last is not None:
                breakdown[last] += 1
        return _figures(states, breakdown, talk, answered)

    def verdicts(self, deliveries: Sequence[Callback]) -> Counter[str]:
        """The verdict each delivery must get, counted: a callback without events is ignored, one of a
        refused call unmatched, a callback's first delivery applied, its later ones duplicates."""
        self.numbers()
        seen: set[tuple[str, str]] = set()
        verdicts: Counter[str] = Counter()
        for callback in deliveries:
            key = (callback.call_id, callback.name)
            if not callback.moves:
                verdicts["ignored"] += 1
            elif callback.call_id in self.refused:
                verdicts["unmatched"] += 1
            elif key in seen:
                verdicts["duplicate"] += 1
            else:
                seen.add(key)
                verdicts["applied"] += 1
        return verdicts


def _figures(states: Counter[str], breakdown: dict[str, int], talk: int, answered: int) -> dict[str, Any]:
    completed, failed = states["completed"], states["failed"]
    rate = Decimal(0)
    if completed + failed:
        rate = (Decimal(100 * completed) / (completed + failed)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    average = (Decimal(talk) / answered).quantize(Decimal(1), ROUND_HALF_UP) if answered else Decimal(0)
    return {
        "calls_completed": completed,
        "calls_failed": failed,
        "calls_pending": states["pending"],
        "calls_in_progress": states["in_progress"],
        "call_status_breakdown": breakdown,
        "total_call_duration": talk,
        "average_call_duration": int(average),
        "success_rate": float(rate),
    }


# -- reading back ----------------------------------------------------------------------------------


async def numbers(hook: Hooked, campaign_id: str | None = None) -> dict[str, Any]:
    """The campaign's getCampaignStats figures the model predicts (total_contacts checked to add up)."""
    response = await hook.http.get(f"/getCampaignStats/{campaign_id or hook.campaign_id}", headers=hook.auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    parts = ("calls_completed", "calls_failed", "calls_pending", "calls_in_progress")
    assert data["total_contacts"] == sum(data[name] for name in parts)
    return {name: data[name] for name in (*parts, *_FIGURES)}


_FIGURES = ("call_status_breakdown", "total_call_duration", "average_call_duration", "success_rate")


def row_count(app: CallstatsApp, table: Table) -> int:
    """Rows in one table, read from the database itself."""
    with app.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def stored_verdicts(app: CallstatsApp) -> Counter[str]:
    """The verdicts of every stored callback, counted."""
    with app.db.read() as conn:
        return Counter(row.verdict for row in conn.execute(select(carrier_callbacks.c.verdict)))


def stored_rows(app: CallstatsApp) -> tuple[int, int]:
    """(carrier_callbacks rows, call_events rows): what a refused callback must not add to."""
    return row_count(app, carrier_callbacks), row_count(app, call_events)


def calls_of(contacts: Sequence[Sequence[PlannedCall]]) -> Iterator[PlannedCall]:
    """Every planned call."""
    return (call for calls in contacts for call in calls)
