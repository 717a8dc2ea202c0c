"""The simulated dialer's calls as a calling platform reports them: Twilio status callbacks, Retell
webhooks, Vapi server messages, signed as the platform signs them. Pure.

`callbacks` turns one simulated event into the requests the platform would send for it, in the
shape carriers/twilio.py, retell.py and vapi.py read (and their docs describe); `signed_request`
makes one of them the bytes and headers to post. The raw status or reason of each outcome is drawn
from the platform's mapping table by the call's id, so the same call always reads the same and the
mix shows several raw values per outcome.

Time runs `speed` times faster in the demo, but a talk time must stay what the simulation drew: a
platform that reports talk time by two timestamps (Retell, Vapi) gets the end of an answered call at
its event's time and the start that much earlier in its final report. Twilio carries it in
`CallDuration`.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import MappingProxyType
from typing import Any, Final, NamedTuple
from urllib.parse import urlencode

import orjson

from callstats.carriers import retell, twilio, vapi
from callstats.demo.simulation import SimEvent

PROVIDERS: Final = (twilio.PROVIDER, retell.PROVIDER, vapi.PROVIDER)
LABELS: Final = MappingProxyType(
    {
        twilio.PROVIDER: "Twilio (signed status callbacks)",
        retell.PROVIDER: "Retell (signed call_started and call_ended webhooks)",
        vapi.PROVIDER: "Vapi (status-update and end-of-call-report messages, HMAC-signed)",
    }
)
"""What the banner says of each platform."""
CALLER_ID: Final = "+14155550100"  # the number the demo dials from (555-01xx: reserved for fiction)

TWILIO_FINAL: Final[Mapping[str, Sequence[str]]] = MappingProxyType(
    {
        "answered": ("completed",),
        "voicemail": ("completed",),
        "busy": ("busy",),
        "no_answer": ("no-answer",),
        "failed": ("failed", "failed", "canceled"),
    }
)
"""Our outcome -> the final CallStatus that reports it (docs/carriers.md, Twilio)."""
TWILIO_ANSWERED_BY: Final[Mapping[str, Sequence[str]]] = MappingProxyType(
    {"answered": ("human",), "voicemail": ("machine_end_beep", "machine_end_silence", "machine_end_other")}
)
"""AnsweredBy of a completed call: the demo places its calls with MachineDetection=DetectMessageEnd."""
RETELL_REASONS: Final[Mapping[str, Sequence[str]]] = MappingProxyType(
    {
        "answered": ("user_hangup", "agent_hangup"),
        "voicemail": ("voicemail_reached",),
        "busy": ("dial_busy",),
        "no_answer": ("dial_no_answer",),
        "failed": ("dial_failed", "invalid_destination", "telephony_provider_unavailable"),
    }
)
"""Our outcome -> disconnection_reasons that report it (docs/carriers.md, Retell)."""
VAPI_REASONS: Final[Mapping[str, Sequence[str]]] = MappingProxyType(
    {
        "answered": ("customer-ended-call", "assistant-ended-call"),
        "voicemail": ("voicemail",),
        "busy": ("customer-busy",),
        "no_answer": ("customer-did-not-answer",),
        "failed": ("twilio-reported-customer-misdialed", "phone-call-provider-closed-websocket"),
    }
)
"""Our outcome -> endedReasons that report it (docs/carriers.md, Vapi)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Callback(NamedTuple):
    """One request a platform sends: its form fields (Twilio) or its JSON object (Retell, Vapi)."""

    form: dict[str, str] | None = None
    payload: dict[str, Any] | None = None


class DemoCall(NamedTuple):
    """What a callback says besides its event: the campaign (named in the platform's call metadata
    where it has one) and the dialed number, E.164."""

    campaign_id: str
    phone: str


def callbacks(provider: str, event: SimEvent, call: DemoCall, at_ms: int) -> list[Callback]:
    """The requests `provider` sends for a simulated event that happened at `at_ms` (epoch ms), in
    the order it sends them; none when the platform reports no such moment (Retell says nothing
    while a call rings).

    Raises ValueError for a provider other than twilio, retell and vapi.
    """
    if provider == twilio.PROVIDER:
        return [Callback(form=form) for form in twilio_forms(event, call, at_ms)]
    if provider == retell.PROVIDER:
        return [Callback(payload=payload) for payload in retell_payloads(event, call, at_ms)]
    if provider == vapi.PROVIDER:
        return [Callback(payload=payload) for payload in vapi_payloads(event, call, at_ms)]
    raise ValueError(f"unknown provider {provider!r}")


def signed_request(
    provider: str, secret: str, url: str, callback: Callback, now_ms: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of `callback` as `provider` posts it to `url` (the full URL it signs,
    query string included) with the connection's `secret`, at `now_ms` (epoch ms, Retell's
    signature time): X-Twilio-Signature over the URL and form, x-retell-signature over the body and
    time, x-vapi-signature (HMAC-SHA256, hex) over the body."""
    if callback.form is not None:
        body = urlencode(callback.form).encode()
        signature = twilio.sign(secret, url, callback.form)
        return body, {"content-type": "application/x-www-form-urlencoded", twilio.SIGNATURE_HEADER: signature}
    body = orjson.dumps(callback.payload)
    if provider == retell.PROVIDER:
        return body, {
            "content-type": "application/json",
            retell.SIGNATURE_HEADER: retell.sign(secret, body, now_ms),
        }
    return body, {"content-type": "application/json", "x-vapi-signature": vapi.sign(secret, body)}


def twilio_forms(event: SimEvent, call: DemoCall, at_ms: int) -> list[dict[str, str]]:
    """Status callbacks (https://www.twilio.com/docs/voice/api/call-resource#statuscallback): a dial
    is initiated then ringing, an answer in-progress, an end its final CallStatus with CallDuration
    (and AnsweredBy for a completed call, answering machine detection being on)."""
    sid = "CA" + _digest(call.campaign_id, event.call_id)
    base = {
        "AccountSid": "AC" + call.campaign_id.replace("-", ""),
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallbackSource": "call-progress-events",
        "Direction": "outbound-api",
        "From": CALLER_ID,
        "To": call.phone,
        "Timestamp": format_datetime(_moment(at_ms)),
    }
    if event.type == "call.started":
        return [
            {**base, "CallStatus": "initiated", "SequenceNumber": "0"},
            {**base, "CallStatus": "ringing", "SequenceNumber": "1"},
        ]
    if event.type == "call.answered":
        return [{**base, "CallStatus": "in-progress", "SequenceNumber": "2"}]
    outcome = event.outcome or "failed"
    final = {
        **base,
        "CallStatus": _pick(sid, TWILIO_FINAL[outcome]),
        "SequenceNumber": "3" if outcome == "answered" else "2",
        "CallDuration": str(event.duration_seconds),
        "Duration": str(-(-event.duration_seconds // 60)),  # billed minutes, rounded up
    }
    if outcome in TWILIO_ANSWERED_BY:
        final["AnsweredBy"] = _pick(sid, TWILIO_ANSWERED_BY[outcome])
    return [final]


def retell_payloads(event: SimEvent, call: DemoCall, at_ms: int) -> list[dict[str, Any]]:
    """Webhooks (https://docs.retellai.com/features/webhook-overview): call_started when the call
    connects (Retell sends none for a call that never does), call_ended at its end with the
    disconnection_reason of its outcome."""
    call_id = _digest(call.campaign_id, event.call_id)
    base: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": call_id,
        "agent_id": "agent_callstats_demo",
        "direction": "outbound",
        "from_number": CALLER_ID,
        "to_number": call.phone,
        "metadata": {"campaign_id": call.campaign_id},
    }
    if event.type == "call.answered":
        return [
            {"event": "call_started", "call": {**base, "call_status": "ongoing", "start_timestamp": at_ms}}
        ]
    if event.type != "call.ended":
        return []
    outcome = event.outcome or "failed"
    ended: dict[str, Any] = {
        **base,
        "call_status": "ended" if outcome in _CONNECTED else "not_connected",
        "end_timestamp": at_ms,
        "disconnection_reason": _pick(call_id, RETELL_REASONS[outcome]),
    }
    if outcome in _CONNECTED:
        ended["start_timestamp"] = at_ms - event.duration_seconds * 1000
        ended["duration_ms"] = event.duration_seconds * 1000
    return [{"event": "call_ended", "call": ended}]


def vapi_payloads(event: SimEvent, call: DemoCall, at_ms: int) -> list[dict[str, Any]]:
    """Server messages (https://docs.vapi.ai/server-url/events): status-update ringing at the dial and
    in-progress at the answer; at the end status-update ended, then the end-of-call-report with the
    endedReason of its outcome and the call's startedAt and endedAt."""
    call_id = _uuid_text(_digest(call.campaign_id, event.call_id))
    base: dict[str, Any] = {
        "id": call_id,
        "type": "outboundPhoneCall",
        "customer": {"number": call.phone},
        "metadata": {"campaign_id": call.campaign_id},
    }
    if event.type in ("call.started", "call.answered"):
        status = "ringing" if event.type == "call.started" else "in-progress"
        return [_vapi_message("status-update", at_ms, {**base, "status": status}, status=status)]
    outcome = event.outcome or "failed"
    reason = _pick(call_id, VAPI_REASONS[outcome])
    ended_call = {**base, "status": "ended", "endedReason": reason}
    connected = event.duration_seconds * 1000 if outcome in _CONNECTED else 0
    report = {
        "endedReason": reason,
        "startedAt": _iso(at_ms - connected),
        "endedAt": _iso(at_ms),
        "durationSeconds": connected / 1000,
    }
    return [
        _vapi_message("status-update", at_ms, ended_call, status="ended", endedReason=reason),
        _vapi_message("end-of-call-report", at_ms, ended_call, **report),
    ]


_CONNECTED: Final = frozenset({"answered", "voicemail"})  # a person or a machine picked up


def _vapi_message(kind: str, at_ms: int, call: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"message": {"type": kind, "timestamp": at_ms, **fields, "call": call}}


def _digest(campaign_id: str, call_id: str) -> str:
    """32 hex digits naming one simulated call of one campaign: a platform's call id is unique."""
    return hashlib.sha256(f"{campaign_id}:{call_id}".encode()).hexdigest()[:32]


def _uuid_text(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def _pick(call_id: str, choices: Sequence[str]) -> str:
    """One of `choices`, always the same for the same call."""
    return choices[zlib.crc32(call_id.encode()) % len(choices)]


def _moment(at_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=at_ms)


def _iso(at_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, as Vapi writes times: `2024-01-16T09:00:00.000Z`."""
    return _moment(at_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
