"""Twilio voice status callbacks: the signature checked as Twilio's own library checks it, and a
callback mapped to our call events. Pure.

Signature (twilio-python's `twilio.request_validator.RequestValidator.validate`, the rule of
https://www.twilio.com/docs/usage/webhooks/webhooks-security): `X-Twilio-Signature` is
base64(HMAC-SHA1(auth token, URL + every parameter name followed by its value, names sorted, a
repeated name's distinct values sorted)), accepted for the URL with its default port added and for
the URL with its port removed. A request that carries `X-Twilio-Webhooks-Signature-Settings` was
signed with a webhook SharedKey and the algorithm that header names (HMAC_SHA1 or HMAC_SHA256;
https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys); the connection's secret is then
that key's secret.

Mapping (https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent and
https://www.twilio.com/docs/voice/answering-machine-detection): `CallStatus` queued, initiated and
ringing start the call, in-progress answers it, and completed, busy, no-answer, failed and canceled
end it with the outcome of `DEFAULT_OUTCOMES`. A completed call's raw outcome is its `AnsweredBy`
when Twilio sent one (the call was placed with answering machine detection), else `completed`.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Final
from urllib.parse import ParseResult, parse_qsl, urlparse

from callstats.carriers.facts import (
    CallFacts,
    CarrierEvent,
    event_id,
    integer,
    outcome_of,
    raw_outcome,
)
from callstats.clock import epoch_ms

PROVIDER: Final = "twilio"
SIGNATURE_HEADER: Final = "X-Twilio-Signature"
SETTINGS_HEADER: Final = "X-Twilio-Webhooks-Signature-Settings"

Params = Mapping[str, str | Sequence[str]]
"""Form parameters: a name's one value, or every value of a repeated name in the order sent."""

_DIGESTS: Final = MappingProxyType({"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"})

STARTED: Final = MappingProxyType({"queued": "queued", "initiated": "initiated", "ringing": "ringing"})
"""CallStatus values that start a call, with the stage each names in its event id."""
ANSWERED: Final = "in-progress"
ENDED: Final = ("completed", "busy", "no-answer", "failed", "canceled")

DEFAULT_OUTCOMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "completed": "answered",  # connected, no answering machine detection asked for
        "human": "answered",  # AMD: a person answered
        "unknown": "answered",  # AMD could not tell in time; the call was connected
        "machine_start": "voicemail",  # AMD (Enable): a machine answered
        "machine_end_beep": "voicemail",  # AMD (DetectMessageEnd): a greeting ending in a beep
        "machine_end_silence": "voicemail",  # ... ending in silence
        "machine_end_other": "voicemail",  # ... ending otherwise
        "fax": "failed",  # a fax machine: nobody can be reached on this number
        "busy": "busy",  # busy signal
        "no-answer": "no_answer",  # rang without an answer
        "failed": "failed",  # could not be placed (invalid number, carrier error)
        "canceled": "failed",  # canceled through the API while queued or ringing
    }
)
"""Raw status or AnsweredBy -> our outcome; a connection's outcome_map wins over it."""


def signature_algorithm(settings_header: str | None) -> str:
    """The algorithm `X-Twilio-Webhooks-Signature-Settings` names (`key=...,algorithm=HMAC_SHA256`);
    HMAC_SHA1, the auth token's, when the header is missing or names none."""
    for part in (settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return "HMAC_SHA1"


def signature_valid(
    auth_token: str, url: str, params: Params, signature: str | None, settings_header: str | None = None
) -> bool:
    """Whether `signature` (X-Twilio-Signature) signs `url` (the full URL Twilio requested, query
    string included) and the form `params` with `auth_token`, exactly as RequestValidator.validate
    decides; `settings_header` is X-Twilio-Webhooks-Signature-Settings when sent.

    Compared in constant time. False, never an exception, for a missing signature, an empty token,
    an unsupported algorithm, a URL whose port does not parse or text that is not UTF-8 encodable.
    """
    digest = _DIGESTS.get(signature_algorithm(settings_header).upper())
    if digest is None or not auth_token or signature is None:
        return False
    try:
        parsed = urlparse(url)
        candidates = (_without_port(parsed), _with_port(parsed))
        given = signature.encode("utf-8")
        key = auth_token.encode("utf-8")
        verdicts = [hmac.compare_digest(_signature(key, uri, params, digest), given) for uri in candidates]
    except (ValueError, UnicodeEncodeError):  # a port out of range or not a number; lone surrogates
        return False
    return any(verdicts)


def form_params(body: bytes) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body as Twilio's validator reads it: every name with all
    its values in order, blank values kept (Twilio signs them too), text and escapes read as UTF-8."""
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return params


def facts(params: Params, received_ms: int, outcome_map: Mapping[str, str]) -> CallFacts:
    """What one verified status callback says (`params` its form, `received_ms` when it arrived,
    epoch ms; `outcome_map` the connection's overrides, raw status or AnsweredBy -> outcome).

    The event happened at `Timestamp` (RFC 2822) when Twilio sent one, else when it was received.
    The phone is `To` (the dialed number of an outbound call). A callback without CallStatus but
    with AnsweredBy is an asynchronous AMD result: it changes no number.
    """
    call_id = _value(params, "CallSid") or ""
    base = CallFacts(PROVIDER, call_id, phone=_value(params, "To"))
    status = _value(params, "CallStatus")
    if not call_id:
        return base._replace(unmatched="no CallSid")
    if status is None:
        return base if _value(params, "AnsweredBy") else base._replace(unmatched="no CallStatus")
    at = _occurred_ms(_value(params, "Timestamp"), received_ms)
    if status in STARTED:
        return base._replace(events=(_event(call_id, STARTED[status], "call.started", at),))
    if status == ANSWERED:
        return base._replace(events=(_event(call_id, "answered", "call.answered", at),))
    if status in ENDED:
        return _ended(base, params, status, at, outcome_map)
    return base._replace(unmatched=f"unknown CallStatus {status!r}")


def _ended(
    base: CallFacts, params: Params, status: str, at: int, outcome_map: Mapping[str, str]
) -> CallFacts:
    """A final status: the outcome of its raw value (AnsweredBy for a completed call that has one)."""
    raw = (_value(params, "AnsweredBy") or status) if status == "completed" else status
    kept = base._replace(raw_outcome=raw_outcome(PROVIDER, raw))
    outcome = outcome_of(raw, DEFAULT_OUTCOMES, outcome_map)
    if outcome is None:
        field = "AnsweredBy" if raw != status else "CallStatus"
        return kept._replace(unmatched=f"unknown {field} {raw!r}")
    duration = 0
    if outcome == "answered":
        seconds = integer(_value(params, "CallDuration"))
        if seconds is None:
            return kept._replace(unmatched="answered call without a CallDuration")
        duration = seconds
    ended = CarrierEvent(event_id(PROVIDER, base.call_id, "completed"), "call.ended", at, outcome, duration)
    return kept._replace(events=(ended,))


def _event(call_id: str, stage: str, kind: str, at: int) -> CarrierEvent:
    return CarrierEvent(event_id(PROVIDER, call_id, stage), kind, at)


def _value(params: Params, name: str) -> str | None:
    """A parameter's value (the first of a repeated name), None when absent or empty."""
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value or None
    return (value[0] or None) if value else None


def _occurred_ms(timestamp: str | None, received_ms: int) -> int:
    """`Timestamp` (RFC 2822, `Mon, 16 Jan 2024 09:00:00 +0000`) in epoch ms, else `received_ms`."""
    if timestamp is None:
        return received_ms
    try:
        return epoch_ms(parsedate_to_datetime(timestamp))
    except (TypeError, ValueError, IndexError, OverflowError):
        return received_ms


def _signature(key: bytes, uri: str, params: Params, digest: str) -> bytes:
    """RequestValidator.compute_signature: base64 of the HMAC of the URL and the sorted parameters."""
    signed = uri
    for name in sorted(set(params)):
        value = params[name]
        values = [value] if isinstance(value, str) else value
        for one in sorted(set(values)):
            signed += name + one
    return base64.b64encode(hmac.new(key, signed.encode("utf-8"), digest).digest())


def _without_port(uri: ParseResult) -> str:
    """request_validator.remove_port: the URL with its port (and anything after the host's first
    colon) dropped."""
    if not uri.port:
        return uri.geturl()
    return uri._replace(netloc=uri.netloc.split(":")[0]).geturl()


def _with_port(uri: ParseResult) -> str:
    """request_validator.add_port: the URL with the scheme's default port when it names none (443 for
    https, 80 for anything else)."""
    if uri.port:
        return uri.geturl()
    port = 443 if uri.scheme == "https" else 80
    return uri._replace(netloc=f"{uri.netloc}:{port}").geturl()


def sign(auth_token: str, url: str, params: Params, algorithm: str = "HMAC_SHA1") -> str:
    """The X-Twilio-Signature Twilio sends for a request to `url` (the full URL, query string
    included) with the form `params`, signed with `auth_token`: what twilio-python's
    `RequestValidator(auth_token).compute_signature(url, params, algorithm)` returns (base64 text).

    For the demo's dialer and the tests, which play the platform. Raises ValueError for an
    algorithm other than HMAC_SHA1 or HMAC_SHA256, as compute_signature does.
    """
    digest = _DIGESTS.get(algorithm.upper())
    if digest is None:
        raise ValueError(f"unsupported webhook signature algorithm {algorithm!r}")
    return _signature(auth_token.encode("utf-8"), url, params, digest).decode("ascii")
