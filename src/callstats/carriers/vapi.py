"""Vapi server messages: the request authenticated by the credential the user set up in Vapi, and a
message mapped to our call events. Pure.

Authentication (https://docs.vapi.ai/server-url/server-authentication), any one of, each compared
in constant time with the connection's secret:
- a Bearer Token credential: `Authorization: Bearer <secret>`;
- an HMAC credential set to algorithm SHA256, signature header `x-vapi-signature`, no timestamp,
  payload format `{body}`, hex encoding: `x-vapi-signature` is hex(HMAC-SHA256(secret, raw body));
- the legacy server secret (or a Bearer Token credential with header X-Vapi-Secret and no prefix):
  `x-vapi-secret: <secret>`.

Messages (https://docs.vapi.ai/server-url/events): `status-update` queued and ringing start the
call, in-progress answers it; `end-of-call-report` ends it with the outcome of its `endedReason`
(https://docs.vapi.ai/calls/call-ended-reason). A status-update `ended` changes nothing by itself,
though it names the endedReason: the end-of-call-report that follows carries the same reason and
the call's startedAt and endedAt, the talk time, so it alone ends the call (two call.ended events
for one call would have the first one's figures win). Every other message type changes no number.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from callstats.carriers.facts import (
    CallFacts,
    CarrierEvent,
    event_id,
    metadata_ids,
    outcome_of,
    raw_outcome,
    talk_seconds,
    text,
)
from callstats.clock import epoch_ms

PROVIDER: Final = "vapi"

STAGES: Final = MappingProxyType(
    {
        "queued": ("queued", "call.started"),
        "ringing": ("ringing", "call.started"),
        "in-progress": ("answered", "call.answered"),
    }
)
"""status-update statuses that move a call: the stage each names in its event id, and its event."""
QUIET_STATUSES: Final = frozenset({"scheduled", "forwarding", "ended", "not-found", "deletion-failed"})
"""Statuses Vapi documents that move no number (forwarding: the call is already answered)."""

FAILED_MARKS: Final = ("error", "failed", "fault")
"""An endedReason holding one of these (`*-error-*`, `call.start.error-*`, `*-llm-failed`,
`*-transcriber-failed`, `*providerfault*`, `*vapifault*`) is a technical failure: failed."""

DEFAULT_OUTCOMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        # connected, ended by either side or by the assistant's limits
        "assistant-ended-call": "answered",
        "assistant-ended-call-after-message-spoken": "answered",
        "assistant-ended-call-with-hangup-task": "answered",
        "assistant-said-end-call-phrase": "answered",
        "customer-ended-call": "answered",
        "customer-ended-call-before-warm-transfer": "answered",
        "customer-ended-call-after-warm-transfer-attempt": "answered",
        "customer-ended-call-during-transfer": "answered",
        "exceeded-max-duration": "answered",
        "silence-timed-out": "answered",  # connected, ended after the silence timeout
        "call.in-progress.twilio-completed-call": "answered",  # the carrier saw the call complete
        "call.in-progress.sip-completed-call": "answered",
        "vonage-completed": "answered",
        "call.ending.hook-executed-say": "answered",  # a hook spoke while the call was ending
        # connected and forwarded
        "assistant-forwarded-call": "answered",
        "call.forwarding.operator-busy": "answered",  # the forward found the operator busy, after an answer
        "call.ringing.hook-executed-transfer": "answered",  # forwarded by a hook while ringing (inbound)
        "call.ending.hook-executed-transfer": "answered",
        # not reached
        "customer-busy": "busy",
        "customer-did-not-answer": "no_answer",
        "call.ringing.sip-inbound-caller-hungup-before-call-connect": "no_answer",
        "voicemail": "voicemail",
        # never connected or dropped without a conversation
        "twilio-reported-customer-misdialed": "failed",
        "vonage-rejected": "failed",
        "vonage-disconnected": "failed",
        "phone-call-provider-closed-websocket": "failed",  # the carrier's stream dropped the call
        "phone-call-provider-bypass-enabled-but-no-call-received": "failed",
        "worker-shutdown": "failed",
        "assistant-join-timed-out": "failed",
        "assistant-not-found": "failed",
        "assistant-not-valid": "failed",
        "assistant-request-returned-invalid-assistant": "failed",
        "assistant-request-returned-no-assistant": "failed",
        "assistant-request-returned-forwarding-phone-number": "failed",
        "customer-did-not-give-microphone-permission": "failed",
        "call.ringing.hook-executed-say": "failed",  # a hook spoke and hung up while ringing (inbound)
        "manually-canceled": "failed",  # like Twilio's canceled
        "scheduled-call-deleted": "failed",
        "call-deleted": "failed",
    }
)
"""endedReason -> our outcome for every reason of Vapi's list (ServerMessageEndOfCallReportEndedReason)
that holds none of FAILED_MARKS; a connection's outcome_map wins over both."""


def authenticated(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the request carries the connection's `secret` by one of the three schemes above;
    `headers` maps lower-case names to values, `body` is the raw request body.

    Each present header is checked in constant time. False for an empty secret.
    """
    if not secret:
        return False
    key = secret.encode()
    verdicts = (
        _bearer_valid(key, headers.get("authorization")),
        _hmac_valid(key, headers.get("x-vapi-signature"), body),
        _equal(key, headers.get("x-vapi-secret")),
    )
    return any(verdicts)


def facts(payload: Mapping[str, Any], received_ms: int, outcome_map: Mapping[str, str]) -> CallFacts:
    """What one authenticated server message (`{"message": {...}}`) says; `received_ms` is when it
    arrived (epoch ms), `outcome_map` the connection's overrides (endedReason -> outcome).

    The phone is `message.call.customer.number` (else `message.customer.number`); campaign_id and
    contact_id come from `call.metadata`, else `call.assistantOverrides.metadata` (where Vapi keeps
    the metadata given when a call is created). A status-update happens at `message.timestamp`
    (epoch ms), an end-of-call-report at `endedAt` (ISO 8601); both at the time received when
    absent. An answered call's talk time runs from startedAt to endedAt.
    """
    message = payload.get("message")
    if not isinstance(message, Mapping):
        return CallFacts(PROVIDER, "", unmatched="no message object")
    call = _object(message.get("call"))
    phone = text(_object(call.get("customer")).get("number"))
    phone = phone or text(_object(message.get("customer")).get("number"))
    campaign_id, contact_id = _metadata_ids(call)
    base = CallFacts(PROVIDER, text(call.get("id")) or "", phone, campaign_id, contact_id)
    kind = message.get("type")
    if kind == "status-update":
        return _status_update(base, message, received_ms)
    if kind == "end-of-call-report":
        return _report(base, message, call, received_ms, outcome_map)
    return base


def outcome_for(reason: str, outcome_map: Mapping[str, str]) -> str | None:
    """Our outcome for an endedReason: the override, the table, failed for a reason holding one of
    FAILED_MARKS, else None (unknown)."""
    outcome = outcome_of(reason, DEFAULT_OUTCOMES, outcome_map)
    if outcome is None and any(mark in reason for mark in FAILED_MARKS):
        return "failed"
    return outcome


def _status_update(base: CallFacts, message: Mapping[str, Any], received_ms: int) -> CallFacts:
    status = text(message.get("status"))
    if status in QUIET_STATUSES:
        return base
    if status is None or status not in STAGES:
        return base._replace(unmatched=f"unknown status {status!r}")
    if not base.call_id:
        return base._replace(unmatched="no message.call.id")
    stage, kind = STAGES[status]
    at = _timestamp_ms(message.get("timestamp"), received_ms)
    return base._replace(events=(CarrierEvent(event_id(PROVIDER, base.call_id, stage), kind, at),))


def _report(
    base: CallFacts,
    message: Mapping[str, Any],
    call: Mapping[str, Any],
    received_ms: int,
    outcome_map: Mapping[str, str],
) -> CallFacts:
    """end-of-call-report: the call ends with the outcome of its endedReason."""
    reason = text(message.get("endedReason")) or text(call.get("endedReason"))
    if reason is None:
        return base._replace(unmatched="end-of-call-report without an endedReason")
    if not base.call_id:
        return base._replace(unmatched="no message.call.id")
    kept = base._replace(raw_outcome=raw_outcome(PROVIDER, reason))
    outcome = outcome_for(reason, outcome_map)
    if outcome is None:
        return kept._replace(unmatched=f"unknown endedReason {reason!r}")
    started = _iso_ms(message.get("startedAt"), call.get("startedAt"))
    ended = _iso_ms(message.get("endedAt"), call.get("endedAt"))
    duration = 0
    if outcome == "answered":
        talk = talk_seconds(started, ended) if started is not None and ended is not None else None
        if talk is None:
            return kept._replace(unmatched="answered call without its talk time")
        duration = talk
    at = ended if ended is not None else _timestamp_ms(message.get("timestamp"), received_ms)
    event = CarrierEvent(event_id(PROVIDER, base.call_id, "ended"), "call.ended", at, outcome, duration)
    return kept._replace(events=(event,))


def _metadata_ids(call: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """campaign_id and contact_id from the call's metadata, else from its assistantOverrides' (each
    id on its own: the first place that names it)."""
    campaign_id, contact_id = metadata_ids(call.get("metadata"))
    overrides = metadata_ids(_object(call.get("assistantOverrides")).get("metadata"))
    return campaign_id or overrides[0], contact_id or overrides[1]


def _bearer_valid(key: bytes, authorization: str | None) -> bool:
    if authorization is None:
        return False
    scheme, _, token = authorization.partition(" ")
    return _equal(key, token) and scheme.lower() == "bearer"


def _hmac_valid(key: bytes, signature: str | None, body: bytes) -> bool:
    if signature is None:
        return False
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return _equal(expected.encode(), signature.strip().lower())


def _equal(expected: bytes, given: str | None) -> bool:
    """Constant-time equality of a header's value with the expected bytes; a missing header is False."""
    if given is None:
        return False
    return hmac.compare_digest(expected, given.encode("utf-8", "surrogatepass"))


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _timestamp_ms(value: object, received_ms: int) -> int:
    """message.timestamp (epoch ms, a JSON number) as an int, else `received_ms`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return received_ms
    try:
        return int(value)
    except (OverflowError, ValueError):  # inf, nan
        return received_ms


def _iso_ms(*values: object) -> int | None:
    """The first of `values` that is an ISO 8601 date-time (`2024-01-16T09:00:00.000Z`), in epoch ms;
    None when none is."""
    for value in values:
        if isinstance(value, str):
            try:
                return epoch_ms(datetime.fromisoformat(value))
            except ValueError:
                continue
    return None


def sign(secret: str, body: bytes) -> str:
    """The x-vapi-signature Vapi sends with the raw `body` under an HMAC credential set as this module
    says (SHA256, no timestamp, payload `{body}`, hex): hex(HMAC-SHA256(secret, body)).

    For the demo's dialer and the tests, which play the platform.
    """
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
