"""Vapi server messages (callstats.carriers.vapi), pure: the three ways Vapi authenticates a request,
and status-update and end-of-call-report messages mapped to our events."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from callstats.carriers import vapi
from callstats.carriers.facts import CarrierEvent

SECRET = "vapi-credential-secret-0123456789"
BODY = json.dumps({"message": {"type": "status-update", "status": "ringing"}}).encode()
RECEIVED = 1_737_157_800_000
CALL_ID = "3f6c2f70-8a59-4a8e-9d0b-1b2c3d4e5f60"
STARTED_AT, ENDED_AT = "2025-01-17T23:49:00.000Z", "2025-01-17T23:50:15.600Z"  # 75.6 s apart
STARTED_MS, ENDED_MS = 1_737_157_740_000, 1_737_157_815_600


def hmac_hex(body: bytes, secret: str = SECRET) -> str:
    """The x-vapi-signature of an HMAC credential (SHA256, payload {body}, hex, no timestamp)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {SECRET}"},
        {"authorization": f"bearer {SECRET}"},  # the scheme is case-insensitive
        {"x-vapi-signature": hmac_hex(BODY)},
        {"x-vapi-signature": hmac_hex(BODY).upper()},
        {"x-vapi-secret": SECRET},
        {"authorization": "Bearer wrong", "x-vapi-secret": SECRET},  # one valid credential suffices
    ],
)
def test_each_way_vapi_authenticates_is_accepted(headers: dict[str, str]) -> None:
    """A Bearer token, an HMAC of the body or the legacy secret header, when it holds the secret."""
    assert vapi.authenticated(SECRET, headers, BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {SECRET}"},
        {"authorization": SECRET},
        {"authorization": f"Bearer {SECRET} "},
        {"authorization": f"Bearer {SECRET[:-1]}"},
        {"x-vapi-signature": hmac_hex(BODY + b" ")},  # signed another body
        {"x-vapi-signature": hmac_hex(BODY, "another-secret")},
        {"x-vapi-signature": "sha256=" + hmac_hex(BODY)},
        {"x-vapi-signature": ""},
        {"x-vapi-secret": SECRET.upper()},
        {"x-vapi-secret": ""},
        {"x-vapi-secret": "Zoë"},
        {"X-Vapi-Secret": SECRET},  # header names arrive lower-cased; anything else is not read
    ],
)
def test_anything_else_is_refused(headers: dict[str, str]) -> None:
    """Wrong, partial, prefixed or missing credentials are refused."""
    assert vapi.authenticated(SECRET, headers, BODY) is False


def test_a_tampered_body_breaks_the_hmac_but_not_a_bearer_token() -> None:
    """The HMAC covers the body; the token schemes do not (Vapi's own design: the token is the proof)."""
    tampered = BODY.replace(b"ringing", b"in-progress")
    assert vapi.authenticated(SECRET, {"x-vapi-signature": hmac_hex(BODY)}, tampered) is False
    assert vapi.authenticated(SECRET, {"authorization": f"Bearer {SECRET}"}, tampered)


def test_an_empty_secret_authenticates_nothing() -> None:
    """A connection without a secret never matches, not even empty headers."""
    headers = {"authorization": "Bearer ", "x-vapi-secret": "", "x-vapi-signature": hmac_hex(BODY, "")}
    assert vapi.authenticated("", headers, BODY) is False


# -- the mapping -----------------------------------------------------------------------------------


def call_object(**changes: Any) -> dict[str, Any]:
    """Vapi's call object for an outbound phone call; a field given as None is left out."""
    call = {
        "id": CALL_ID,
        "type": "outboundPhoneCall",
        "customer": {"number": "+14155550100"},
        "assistantOverrides": {"metadata": {"campaign_id": "9b2f", "contact_id": "12"}},
        "startedAt": STARTED_AT,
        "endedAt": ENDED_AT,
        **changes,
    }
    return {name: value for name, value in call.items() if value is not None}


def status_update(status: str, **message: Any) -> dict[str, Any]:
    """A status-update server message."""
    return {
        "message": {
            "type": "status-update",
            "status": status,
            "timestamp": RECEIVED - 5_000,
            "call": call_object(),
            **message,
        }
    }


def report(reason: str, **message: Any) -> dict[str, Any]:
    """An end-of-call-report server message; a field given as None is left out."""
    fields = {
        "type": "end-of-call-report",
        "endedReason": reason,
        "timestamp": RECEIVED - 1_000,
        "startedAt": STARTED_AT,
        "endedAt": ENDED_AT,
        "call": call_object(),
        **message,
    }
    return {"message": {name: value for name, value in fields.items() if value is not None}}


@pytest.mark.parametrize(
    ("status", "stage", "kind"),
    [
        ("queued", "queued", "call.started"),
        ("ringing", "ringing", "call.started"),
        ("in-progress", "answered", "call.answered"),
    ],
)
def test_status_updates_start_and_answer_the_call(status: str, stage: str, kind: str) -> None:
    """queued and ringing start the call, in-progress answers it, at the message's timestamp (ms)."""
    found = vapi.facts(status_update(status), RECEIVED, {})
    assert found.events == (CarrierEvent(f"vapi:{CALL_ID}:{stage}", kind, RECEIVED - 5_000),)
    assert (found.call_id, found.phone, found.campaign_id, found.contact_id) == (
        CALL_ID,
        "+14155550100",
        "9b2f",
        "12",
    )
    assert (found.raw_outcome, found.unmatched) == (None, None)
    assert (
        vapi.facts(status_update(status, timestamp=None), RECEIVED, {}).events[0].occurred_at_ms == RECEIVED
    )


def test_quiet_statuses_change_nothing_and_unknown_ones_are_unmatched() -> None:
    """scheduled, forwarding and ended (even with its endedReason) move no number; a new status is
    unmatched, not guessed."""
    for status in ("scheduled", "forwarding", "ended", "not-found", "deletion-failed"):
        found = vapi.facts(status_update(status, endedReason="customer-busy"), RECEIVED, {})
        assert (found.events, found.unmatched) == ((), None)
    unknown = vapi.facts(status_update("teleporting"), RECEIVED, {})
    assert (unknown.events, unknown.unmatched) == ((), "unknown status 'teleporting'")


@pytest.mark.parametrize(
    ("reason", "outcome", "duration"),
    [
        ("customer-ended-call", "answered", 76),
        ("assistant-ended-call", "answered", 76),
        ("assistant-forwarded-call", "answered", 76),
        ("silence-timed-out", "answered", 76),
        ("exceeded-max-duration", "answered", 76),
        ("customer-busy", "busy", 0),
        ("customer-did-not-answer", "no_answer", 0),
        ("voicemail", "voicemail", 0),
        ("twilio-failed-to-connect-call", "failed", 0),
        ("pipeline-error-openai-llm-failed", "failed", 0),
        ("call.start.error-subscription-insufficient-credits", "failed", 0),
        ("call.in-progress.error-providerfault-outbound-sip-503-service-unavailable", "failed", 0),
        ("call.in-progress.error-vapifault-worker-died", "failed", 0),
        ("manually-canceled", "failed", 0),
    ],
)
def test_end_of_call_reports_end_the_call_with_their_reasons_outcome(
    reason: str, outcome: str, duration: int
) -> None:
    """The outcome of endedReason at endedAt; talk time (startedAt to endedAt, half up) if answered."""
    found = vapi.facts(report(reason), RECEIVED, {})
    assert found.events == (CarrierEvent(f"vapi:{CALL_ID}:ended", "call.ended", ENDED_MS, outcome, duration),)
    assert (found.raw_outcome, found.unmatched) == (f"vapi:{reason}", None)


def test_the_table_holds_only_reasons_the_failure_marks_do_not_cover() -> None:
    """Table and marks do not overlap, and the table maps onto our outcomes."""
    assert not [
        reason for reason in vapi.DEFAULT_OUTCOMES if any(mark in reason for mark in vapi.FAILED_MARKS)
    ]
    assert set(vapi.DEFAULT_OUTCOMES.values()) == {"answered", "busy", "no_answer", "failed", "voicemail"}


def test_unknown_or_missing_reasons_are_never_guessed() -> None:
    """A reason neither in the table nor marked as a failure, or none: unmatched."""
    unknown = vapi.facts(report("hangup"), RECEIVED, {})
    assert (unknown.events, unknown.unmatched, unknown.raw_outcome) == (
        (),
        "unknown endedReason 'hangup'",
        "vapi:hangup",
    )
    missing = vapi.facts(report("x", endedReason=None), RECEIVED, {})
    assert (missing.events, missing.unmatched) == ((), "end-of-call-report without an endedReason")
    from_call = vapi.facts(
        report("x", endedReason=None, call=call_object(endedReason="customer-busy")), RECEIVED, {}
    )
    assert from_call.events[0].outcome == "busy"


def test_the_connections_outcome_map_wins() -> None:
    """Overrides beat the table, the failure marks and the unknown."""
    overrides = {"voicemail": "no_answer", "worker-shutdown": "answered", "hangup": "answered"}
    assert vapi.facts(report("voicemail"), RECEIVED, overrides).events[0].outcome == "no_answer"
    assert vapi.facts(report("worker-shutdown"), RECEIVED, overrides).events[0][3:] == ("answered", 76)
    assert vapi.facts(report("hangup"), RECEIVED, overrides).unmatched is None


def test_talk_time_comes_from_the_message_else_the_call_and_is_never_guessed() -> None:
    """startedAt and endedAt of the message, else of its call; without them an answered call is
    unmatched and another ends at the message's timestamp."""
    from_call = vapi.facts(report("customer-ended-call", startedAt=None, endedAt=None), RECEIVED, {})
    assert from_call.events[0][2:] == (ENDED_MS, "answered", 76)
    bare = report(
        "customer-ended-call", startedAt=None, endedAt=None, call=call_object(startedAt=None, endedAt=None)
    )
    assert vapi.facts(bare, RECEIVED, {}).unmatched == "answered call without its talk time"
    backwards = vapi.facts(
        report("customer-ended-call", startedAt=ENDED_AT, endedAt=STARTED_AT), RECEIVED, {}
    )
    assert backwards.unmatched == "answered call without its talk time"
    busy = report("customer-busy", startedAt=None, endedAt="not a time", call=call_object(endedAt=None))
    assert vapi.facts(busy, RECEIVED, {}).events[0][2:] == (RECEIVED - 1_000, "busy", 0)


def test_campaign_contact_and_phone_are_read_where_vapi_keeps_them() -> None:
    """call.metadata first, then assistantOverrides.metadata; the call's customer, else the message's."""
    call = call_object(metadata={"campaign_id": "c-call"}, customer=None)
    found = vapi.facts(report("customer-busy", call=call, customer={"number": "+14155550199"}), RECEIVED, {})
    assert (found.campaign_id, found.contact_id, found.phone) == ("c-call", "12", "+14155550199")
    bare = vapi.facts(
        report("customer-busy", call=call_object(assistantOverrides=None, customer=None)), RECEIVED, {}
    )
    assert (bare.campaign_id, bare.contact_id, bare.phone) == (None, None, None)


def test_other_message_types_change_no_number() -> None:
    """transcript, conversation-update, tool-calls, hang...: acknowledged, no events, not unmatched."""
    for kind in ("transcript", "conversation-update", "tool-calls", "hang", "speech-update", "brand-new"):
        found = vapi.facts({"message": {"type": kind, "call": call_object()}}, RECEIVED, {})
        assert (found.events, found.unmatched, found.call_id) == ((), None, CALL_ID)


def test_redeliveries_repeat_and_stages_differ() -> None:
    """The same message again gives identical facts; each stage of a call has its own id."""
    assert vapi.facts(report("customer-busy"), RECEIVED, {}) == vapi.facts(
        report("customer-busy"), RECEIVED + 5, {}
    )
    messages = [
        status_update("queued"),
        status_update("ringing"),
        status_update("in-progress"),
        report("voicemail"),
    ]
    ids = {vapi.facts(message, RECEIVED, {}).events[0].event_id for message in messages}
    assert len(ids) == len(messages)


def test_malformed_messages_are_unmatched() -> None:
    """No message object, or a moving message without a call id, cannot be mapped."""
    assert vapi.facts({}, RECEIVED, {}).unmatched == "no message object"
    assert vapi.facts({"message": [1]}, RECEIVED, {}).unmatched == "no message object"
    assert (
        vapi.facts(status_update("ringing", call=call_object(id=None)), RECEIVED, {}).unmatched
        == "no message.call.id"
    )
    assert vapi.facts(report("customer-busy", call=None), RECEIVED, {}).unmatched == "no message.call.id"
