"""Retell webhooks (callstats.carriers.retell), pure: signatures made by retell-sdk's own signing helper
and judged against its verify, and every disconnection_reason mapped to our events."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from retell.lib.webhook_auth import symmetric
from retell.types.phone_call_response import PhoneCallResponse

from callstats.carriers import retell
from callstats.carriers.facts import CarrierEvent

API_KEY = "key_0123456789abcdef0123456789ab"
NOW = 1_714_608_500_000
START, END = 1_714_608_475_945, 1_714_608_491_736  # 15.791 s apart
CALL = {
    "call_type": "phone_call",
    "from_number": "+12137771234",
    "to_number": "+12137771235",
    "direction": "outbound",
    "call_id": "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6",
    "agent_id": "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD",
    "call_status": "ended",
    "metadata": {"campaign_id": "9b2f", "contact_id": 12},
    "start_timestamp": START,
    "end_timestamp": END,
    "disconnection_reason": "user_hangup",
}


def body_of(event: str, **call: Any) -> bytes:
    """A webhook body as Retell sends it: compact JSON of the event and the call."""
    return json.dumps(
        {"event": event, "call": {**CALL, **call}}, separators=(",", ":"), ensure_ascii=False
    ).encode()


def sdk_signature(body: bytes, key: str = API_KEY, at: int = NOW) -> str:
    """x-retell-signature as retell-sdk signs `body` at `at` (epoch ms)."""
    signature = symmetric["sign"](body.decode(), key, at)
    assert isinstance(signature, str)
    return signature


def sdk_verdict(body: bytes, header: str, now: int = NOW) -> bool:
    """retell-sdk's verify of `header` for `body`, its clock at `now`."""
    verdict = symmetric["verify"](body.decode(), API_KEY, header, {"timestamp": now})
    assert isinstance(verdict, bool)
    return verdict


# -- the signature ---------------------------------------------------------------------------------


def test_a_genuine_webhook_is_accepted_by_both() -> None:
    """The SDK's own signature over the raw body holds for us as for its verify."""
    body = body_of("call_ended")
    header = sdk_signature(body)
    assert header.startswith(f"v={NOW},d=")
    assert retell.signature_valid(API_KEY, body, header, NOW)
    assert sdk_verdict(body, header)


@pytest.mark.parametrize(
    ("signed_at", "now"),
    [
        (NOW, NOW + retell.TOLERANCE_MS),  # five minutes old: still accepted
        (NOW, NOW + retell.TOLERANCE_MS + 1),  # expired
        (NOW, NOW - retell.TOLERANCE_MS),  # five minutes ahead: accepted
        (NOW, NOW - retell.TOLERANCE_MS - 1),  # too far ahead
        (NOW, NOW + 86_400_000),  # a replay a day later
    ],
)
def test_the_timestamp_tolerance_is_the_sdks(signed_at: int, now: int) -> None:
    """A signature older or newer than five minutes is refused, exactly at the SDK's bound."""
    body = body_of("call_ended")
    header = sdk_signature(body, at=signed_at)
    assert retell.signature_valid(API_KEY, body, header, now) == sdk_verdict(body, header, now)
    assert retell.signature_valid(API_KEY, body, header, now) == (abs(now - signed_at) <= 5 * 60 * 1000)


def test_tampering_is_refused_by_both() -> None:
    """A changed body, another key's signature, a moved timestamp or a changed digest: refused."""
    body = body_of("call_ended")
    header = sdk_signature(body)
    tampered = body_of("call_ended", disconnection_reason="dial_busy")
    moved = header.replace(f"v={NOW}", f"v={NOW + 1}")
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    for candidate_body, candidate_header in ((tampered, header), (body, moved), (body, flipped)):
        assert retell.signature_valid(API_KEY, candidate_body, candidate_header, NOW) is False
        assert sdk_verdict(candidate_body, candidate_header) is False
    assert retell.signature_valid(API_KEY, body, sdk_signature(body, key="key_other"), NOW) is False
    assert retell.signature_valid("", body, header, NOW) is False


@pytest.mark.parametrize(
    "header",
    [
        "",
        "d=" + "0" * 64,
        f"v={NOW}",
        f"v={NOW},d=" + "A" * 64,  # upper-case hex: the SDK's pattern refuses it
        f"v={NOW},d=" + "0" * 63,
        f"v={NOW},d=" + "0" * 64 + " ",
        f"v=-{NOW},d=" + "0" * 64,
        "v=" + "9" * 5000 + ",d=" + "0" * 64,  # more digits than int() reads
    ],
)
def test_malformed_headers_are_refused_without_an_exception(header: str) -> None:
    """Anything but `v=<digits>,d=<64 lower-case hex>` is refused, as the SDK's pattern refuses it."""
    assert retell.signature_valid(API_KEY, body_of("call_ended"), header, NOW) is False
    assert retell.signature_valid(API_KEY, body_of("call_ended"), None, NOW) is False


def test_the_signed_body_is_the_raw_bytes() -> None:
    """Re-serialized JSON with other spacing is not what Retell signed: only the raw body passes."""
    body = body_of("call_started")
    header = sdk_signature(body)
    spaced = json.dumps(json.loads(body)).encode()
    assert spaced != body
    assert retell.signature_valid(API_KEY, spaced, header, NOW) is False
    non_ascii = body_of("call_started", metadata={"campaign_id": "9b2f", "note": "Zoë"})
    assert retell.signature_valid(API_KEY, non_ascii, sdk_signature(non_ascii), NOW)


# -- the mapping -----------------------------------------------------------------------------------


def payload(event: str, **call: Any) -> dict[str, Any]:
    """A parsed webhook body; a call field given as None is left out."""
    merged = {**CALL, **call}
    return {"event": event, "call": {name: value for name, value in merged.items() if value is not None}}


def test_call_started_starts_and_answers_the_call() -> None:
    """Retell sends call_started only for a connected call: started and answered at start_timestamp."""
    found = retell.facts(payload("call_started"), NOW, {})
    call_id = CALL["call_id"]
    assert found.events == (
        CarrierEvent(f"retell:{call_id}:started", "call.started", START),
        CarrierEvent(f"retell:{call_id}:answered", "call.answered", START),
    )
    assert (found.phone, found.campaign_id, found.contact_id) == ("+12137771235", "9b2f", "12")
    assert (found.raw_outcome, found.unmatched) == (None, None)
    assert (
        retell.facts(payload("call_started", start_timestamp=None), NOW, {}).events[0].occurred_at_ms == NOW
    )


@pytest.mark.parametrize(
    ("reason", "outcome", "duration"),
    [
        ("user_hangup", "answered", 16),
        ("agent_hangup", "answered", 16),
        ("call_transfer", "answered", 16),
        ("inactivity", "answered", 16),
        ("max_duration_reached", "answered", 16),
        ("voicemail_reached", "voicemail", 0),
        ("machine_detected", "voicemail", 0),
        ("ivr_reached", "voicemail", 0),
        ("dial_busy", "busy", 0),
        ("dial_no_answer", "no_answer", 0),
        ("dial_failed", "failed", 0),
        ("invalid_destination", "failed", 0),
        ("error_llm_websocket_open", "failed", 0),
        ("error_brand_new_fault", "failed", 0),  # an unlisted error_ reason
        ("manual_stopped", "failed", 0),
    ],
)
def test_call_ended_ends_the_call_with_its_disconnection_reasons_outcome(
    reason: str, outcome: str, duration: int
) -> None:
    """The outcome of the reason at end_timestamp; talk time (start to end, half up) only if answered."""
    found = retell.facts(payload("call_ended", disconnection_reason=reason), NOW, {})
    event = CarrierEvent(f"retell:{CALL['call_id']}:ended", "call.ended", END, outcome, duration)
    assert found.events == (event,)
    assert (found.raw_outcome, found.unmatched) == (f"retell:{reason}", None)


def test_every_reason_the_sdk_knows_has_an_outcome() -> None:
    """Each disconnection_reason of retell-sdk's PhoneCallResponse is in the table, mapped to ours."""
    annotation = PhoneCallResponse.model_fields["disconnection_reason"].annotation
    literal = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    sdk_reasons = set(typing.get_args(literal))
    assert len(sdk_reasons) > 30
    assert sdk_reasons <= set(retell.DEFAULT_OUTCOMES)
    assert set(retell.DEFAULT_OUTCOMES.values()) == {"answered", "busy", "no_answer", "failed", "voicemail"}


def test_talk_time_falls_back_to_duration_ms_and_is_never_guessed() -> None:
    """Without both timestamps the talk time is duration_ms; without that either, unmatched."""
    from_duration = retell.facts(payload("call_ended", start_timestamp=None, duration_ms=61_500), NOW, {})
    assert from_duration.events[0].duration_seconds == 62
    neither = retell.facts(payload("call_ended", start_timestamp=None), NOW, {})
    assert (neither.events, neither.unmatched) == ((), "answered call without its talk time")
    backwards = retell.facts(payload("call_ended", end_timestamp=START - 1), NOW, {})
    assert backwards.unmatched == "answered call without its talk time"
    busy = retell.facts(
        payload("call_ended", disconnection_reason="dial_busy", start_timestamp=None), NOW, {}
    )
    assert busy.events[0][2:] == (END, "busy", 0)
    no_end = retell.facts(
        payload("call_ended", disconnection_reason="dial_busy", end_timestamp=None), NOW, {}
    )
    assert no_end.events[0].occurred_at_ms == NOW


def test_unknown_or_missing_reasons_are_never_guessed() -> None:
    """A reason outside the table (and not error_) or none at all: no events, the reason says why."""
    unknown = retell.facts(payload("call_ended", disconnection_reason="aliens"), NOW, {})
    assert (unknown.events, unknown.unmatched) == ((), "unknown disconnection_reason 'aliens'")
    assert unknown.raw_outcome == "retell:aliens"
    missing = retell.facts(payload("call_ended", disconnection_reason=None), NOW, {})
    assert (missing.events, missing.unmatched) == ((), "call_ended without a disconnection_reason")


def test_the_connections_outcome_map_wins() -> None:
    """One user counts ivr_reached as answered; another names a reason Retell added later."""
    ivr = retell.facts(
        payload("call_ended", disconnection_reason="ivr_reached"), NOW, {"ivr_reached": "answered"}
    )
    assert ivr.events[0][3:] == ("answered", 16)
    aliens = retell.facts(payload("call_ended", disconnection_reason="aliens"), NOW, {"aliens": "no_answer"})
    assert (aliens.events[0].outcome, aliens.unmatched) == ("no_answer", None)
    error = retell.facts(payload("call_ended", disconnection_reason="error_asr"), NOW, {"error_asr": "busy"})
    assert error.events[0].outcome == "busy"


def test_call_analyzed_and_other_events_change_no_number() -> None:
    """call_analyzed, transcript and transfer events: the call's facts, no events, not unmatched."""
    for event in ("call_analyzed", "transcript_updated", "transfer_started", "something_new"):
        found = retell.facts(payload(event), NOW, {})
        assert (found.events, found.unmatched, found.call_id) == ((), None, CALL["call_id"])


def test_redeliveries_repeat_and_stages_differ() -> None:
    """The same webhook again gives identical facts; started, answered and ended have distinct ids."""
    assert retell.facts(payload("call_ended"), NOW, {}) == retell.facts(
        payload("call_ended"), NOW + 9_000, {}
    )
    ids = [
        event.event_id
        for name in ("call_started", "call_ended")
        for event in retell.facts(payload(name), NOW, {}).events
    ]
    assert len(ids) == len(set(ids)) == 3


def test_malformed_webhooks_are_unmatched() -> None:
    """No call object, or a call without call_id, cannot be mapped."""
    assert retell.facts({"event": "call_ended"}, NOW, {}).unmatched == "no call object"
    assert retell.facts({"event": "call_ended", "call": "x"}, NOW, {}).unmatched == "no call object"
    assert retell.facts(payload("call_ended", call_id=None), NOW, {}).unmatched == "no call.call_id"
    no_metadata = retell.facts(payload("call_started", metadata=None, to_number=None), NOW, {})
    assert (no_metadata.phone, no_metadata.campaign_id, no_metadata.contact_id) == (None, None, None)
