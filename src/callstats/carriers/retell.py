"""Retell AI webhooks: the signature checked as retell-sdk checks it, and an event mapped to our call
events. Pure.

Signature (retell-sdk's `retell/lib/webhook_auth.py`, `verify`;
https://docs.retellai.com/features/secure-webhook): `x-retell-signature` is
`v=<epoch ms>,d=<hex HMAC-SHA256(API key, body followed by those ms in decimal)>`, refused when its
time lies more than five minutes from the server's clock.

Events (https://docs.retellai.com/features/webhook-overview): `call_started` is sent only for a call
that connected (a call that did not connect gets call_ended alone), so it starts and answers the
call; `call_ended` ends it with the outcome of its `disconnection_reason`
(https://docs.retellai.com/reliability/debug-call-disconnect); `call_analyzed` and every other event
change no number.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from callstats.carriers.facts import (
    CallFacts,
    CarrierEvent,
    event_id,
    integer,
    metadata_ids,
    outcome_of,
    raw_outcome,
    talk_seconds,
    text,
)

PROVIDER: Final = "retell"
SIGNATURE_HEADER: Final = "x-retell-signature"
TOLERANCE_MS: Final = 5 * 60 * 1000
_SIGNATURE = re.compile(r"v=(\d+),d=([0-9a-f]{64})")  # webhook_auth.verify's own pattern

ERROR_PREFIX: Final = "error_"
"""Every reason Retell documents as an error starts so; one not in the table below is failed too."""

DEFAULT_OUTCOMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        # connected, ended by either side or by the agent's own settings
        "user_hangup": "answered",
        "agent_hangup": "answered",
        "user_requested_dnc": "answered",  # the person asked not to be called again: a conversation
        "user_requested_callback": "answered",  # the person asked to be called back: a conversation
        "inactivity": "answered",  # connected, ended by end_call_after_silence_ms
        "max_duration_reached": "answered",
        "call_take_over": "answered",  # a person took the connected call over from the agent
        # connected and transferred
        "call_transfer": "answered",
        "transfer_bridged": "answered",
        "transfer_cancelled": "answered",  # the transfer failed; the call itself was connected
        # a machine answered
        "voicemail_reached": "voicemail",
        "machine_detected": "voicemail",  # drop_call_if_machine_detected (older agents)
        "ivr_reached": "voicemail",  # an automated system, no person reached
        # not connected
        "dial_busy": "busy",
        "dial_no_answer": "no_answer",
        "user_declined": "no_answer",  # the person rejected the ringing call: not reached, no fault
        "dial_failed": "failed",
        "invalid_destination": "failed",
        "telephony_provider_permission_denied": "failed",
        "telephony_provider_unavailable": "failed",
        "sip_routing_error": "failed",
        "marked_as_spam": "failed",
        "network_blocked": "failed",
        "registered_call_timeout": "failed",  # registered but never dialed in time
        "manual_stopped": "failed",  # stopped by an operator, like Twilio's canceled
        # refused by Retell before or while dialing
        "concurrency_limit_reached": "failed",
        "no_concurrency_fallback": "failed",
        "no_valid_payment": "failed",
        "credit_exhausted": "failed",
        "budget_reached": "failed",
        "scam_detected": "failed",
        # errors
        "error_llm_websocket_open": "failed",
        "error_llm_websocket_lost_connection": "failed",
        "error_llm_websocket_runtime": "failed",
        "error_llm_websocket_corrupt_payload": "failed",
        "error_no_audio_received": "failed",
        "error_asr": "failed",
        "error_retell": "failed",
        "error_unknown": "failed",
        "error_user_not_joined": "failed",
        "error_inbound_webhook": "failed",
    }
)
"""disconnection_reason -> our outcome, every reason retell-sdk 6.2 and the disconnection docs list;
a connection's outcome_map wins over it."""


def signature_valid(api_key: str, body: bytes, header: str | None, now_ms: int) -> bool:
    """Whether `header` (x-retell-signature) signs the raw request `body` with `api_key` and was made
    within five minutes of `now_ms` (epoch ms), exactly as retell-sdk's `verify` decides.

    The digest is compared in constant time. False, never an exception, for a missing or malformed
    header or an empty key.
    """
    if not api_key or header is None:
        return False
    match = _SIGNATURE.fullmatch(header)
    if match is None:
        return False
    try:
        stamp = int(match.group(1))
    except ValueError:  # more digits than int() reads
        return False
    if abs(now_ms - stamp) > TOLERANCE_MS:
        return False
    expected = hmac.new(api_key.encode(), body + str(stamp).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(2))


def facts(payload: Mapping[str, Any], received_ms: int, outcome_map: Mapping[str, str]) -> CallFacts:
    """What one verified webhook (`{"event": ..., "call": {...}}`) says; `received_ms` is when it
    arrived (epoch ms), `outcome_map` the connection's overrides (disconnection_reason -> outcome).

    The phone is `call.to_number`; campaign_id and contact_id come from `call.metadata`. A call
    starts and is answered at `start_timestamp` and ends at `end_timestamp` (epoch ms; the time
    received when absent); an answered call's talk time is the time between the two.
    """
    call = payload.get("call")
    if not isinstance(call, Mapping):
        return CallFacts(PROVIDER, "", unmatched="no call object")
    call_id = text(call.get("call_id")) or ""
    campaign_id, contact_id = metadata_ids(call.get("metadata"))
    base = CallFacts(PROVIDER, call_id, text(call.get("to_number")), campaign_id, contact_id)
    event = payload.get("event")
    if event not in ("call_started", "call_ended"):
        return base
    if not call_id:
        return base._replace(unmatched="no call.call_id")
    if event == "call_started":
        at = _ms(call.get("start_timestamp"), received_ms)
        started = CarrierEvent(event_id(PROVIDER, call_id, "started"), "call.started", at)
        answered = CarrierEvent(event_id(PROVIDER, call_id, "answered"), "call.answered", at)
        return base._replace(events=(started, answered))
    return _ended(base, call, received_ms, outcome_map)


def outcome_for(reason: str, outcome_map: Mapping[str, str]) -> str | None:
    """Our outcome for a disconnection_reason: the override, the table, failed for an unlisted
    `error_` reason, else None (unknown)."""
    outcome = outcome_of(reason, DEFAULT_OUTCOMES, outcome_map)
    if outcome is None and reason.startswith(ERROR_PREFIX):
        return "failed"
    return outcome


def _ended(
    base: CallFacts, call: Mapping[str, Any], received_ms: int, outcome_map: Mapping[str, str]
) -> CallFacts:
    """call_ended: the call ends with the outcome of its disconnection_reason."""
    reason = text(call.get("disconnection_reason"))
    if reason is None:
        return base._replace(unmatched="call_ended without a disconnection_reason")
    kept = base._replace(raw_outcome=raw_outcome(PROVIDER, reason))
    outcome = outcome_for(reason, outcome_map)
    if outcome is None:
        return kept._replace(unmatched=f"unknown disconnection_reason {reason!r}")
    duration = 0
    if outcome == "answered":
        talk = _talk_seconds(call)
        if talk is None:
            return kept._replace(unmatched="answered call without its talk time")
        duration = talk
    at = _ms(call.get("end_timestamp"), received_ms)
    ended = CarrierEvent(event_id(PROVIDER, base.call_id, "ended"), "call.ended", at, outcome, duration)
    return kept._replace(events=(ended,))


def _talk_seconds(call: Mapping[str, Any]) -> int | None:
    """Whole seconds from start_timestamp to end_timestamp, else from duration_ms (half up)."""
    start, end = integer(call.get("start_timestamp")), integer(call.get("end_timestamp"))
    if start is not None and end is not None:
        return talk_seconds(start, end)
    duration_ms = integer(call.get("duration_ms"))
    return talk_seconds(0, duration_ms) if duration_ms is not None else None


def _ms(value: object, received_ms: int) -> int:
    stamp = integer(value)
    return received_ms if stamp is None else stamp


def sign(api_key: str, body: bytes, now_ms: int) -> str:
    """The x-retell-signature Retell sends with the raw `body` at `now_ms` (epoch ms), signed with
    `api_key`: `v=<now_ms>,d=<hex HMAC-SHA256(api_key, body followed by now_ms in decimal)>`, what
    retell-sdk's `retell.lib.webhook_auth.symmetric["sign"](body, api_key, now_ms)` returns.

    For the demo's dialer and the tests, which play the platform.
    """
    digest = hmac.new(api_key.encode(), body + str(now_ms).encode(), hashlib.sha256).hexdigest()
    return f"v={now_ms},d={digest}"
