"""Twilio status callbacks (callstats.carriers.twilio), pure: the signature judged against twilio's own
RequestValidator as the oracle, and every status and AnsweredBy value mapped to our events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from callstats.carriers import twilio
from callstats.carriers.facts import CarrierEvent

TOKEN = "12345678901234567890123456789012"
URL = "https://stats.example.com/webhooks/twilio/7d0c6a4e?campaign_id=9b2f&contact_id=12"
RECEIVED = 1_705_395_700_000
SID = "CA0123456789abcdef0123456789abcdef"
COMPLETED = {
    "CallSid": SID,
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "From": "+14155550000",
    "To": "+14155550100",
    "Direction": "outbound-api",
    "ApiVersion": "2010-04-01",
    "CallStatus": "completed",
    "CallDuration": "42",
    "SequenceNumber": "3",
    "StatusCallbackEvent": "completed",
    "Timestamp": "Tue, 16 Jan 2024 09:01:40 +0000",
    "ForwardedFrom": "",
}
AT = 1_705_395_700_000  # COMPLETED's Timestamp in epoch ms


Form = Mapping[str, str | Sequence[str]]


def multidict(params: Form) -> ImmutableMultiDict[str, str]:
    """The form as a web framework hands it to twilio's validator: a multi-dict, repeats kept."""
    return ImmutableMultiDict(
        [
            (name, one)
            for name, value in params.items()
            for one in ([value] if isinstance(value, str) else value)
        ]
    )


def oracle(url: str, params: Form, signature: str, algorithm: str | None = None) -> bool:
    """twilio's verdict on a request."""
    verdict = RequestValidator(TOKEN).validate(url, multidict(params), signature, algorithm)
    assert isinstance(verdict, bool)
    return verdict


def signed(url: str, params: Form, algorithm: str | None = None) -> str:
    """The X-Twilio-Signature twilio's library computes for `url` and `params`."""
    signature = RequestValidator(TOKEN).compute_signature(url, multidict(params), algorithm)
    assert isinstance(signature, str)
    return signature


# -- the signature ---------------------------------------------------------------------------------


def test_a_genuine_callback_is_accepted_by_both() -> None:
    """The signature twilio computes for the URL and form is accepted, as the validator accepts it."""
    signature = signed(URL, COMPLETED)
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, signature)
    assert oracle(URL, COMPLETED, signature)


@pytest.mark.parametrize(
    "tamper",
    [
        {"CallStatus": "no-answer"},  # a parameter changed
        {"CallDuration": "4200"},
        {"Extra": "1"},  # a parameter added
        {"ForwardedFrom": " "},  # a blank value is signed too
    ],
)
def test_a_tampered_parameter_is_refused_by_both(tamper: dict[str, str]) -> None:
    """Any changed or added parameter breaks the signature, for us exactly as for the validator."""
    signature = signed(URL, COMPLETED)
    params = {**COMPLETED, **tamper}
    assert twilio.signature_valid(TOKEN, URL, params, signature) is False
    assert oracle(URL, params, signature) is False


def test_a_dropped_parameter_is_refused() -> None:
    """A parameter removed from the form breaks the signature."""
    signature = signed(URL, COMPLETED)
    params = {name: value for name, value in COMPLETED.items() if name != "To"}
    assert twilio.signature_valid(TOKEN, URL, params, signature) is False
    assert oracle(URL, params, signature) is False


@pytest.mark.parametrize(
    ("signed_url", "requested_url"),
    [
        (URL, URL.replace("stats.example.com", "stats.example.com:443")),  # default port added
        (URL.replace("stats.example.com", "stats.example.com:443"), URL),  # ... or removed
        ("http://h.example/webhooks/twilio/x", "http://h.example:80/webhooks/twilio/x"),
        ("http://h.example:8080/webhooks/twilio/x", "http://h.example:8080/webhooks/twilio/x"),
        ("https://h.example/webhooks/twilio/x", "https://h.example:8443/webhooks/twilio/x"),
        ("https://h.example:8443/webhooks/twilio/x", "https://h.example/webhooks/twilio/x"),
        ("https://user:pw@h.example:443/x", "https://user:pw@h.example/x"),
        ("https://user/x", "https://user:pw@h.example:443/x"),  # its port removal keeps what precedes a ":"
        (URL, URL.replace("contact_id=12", "contact_id=13")),  # another query
        (URL, URL.replace("7d0c6a4e", "7d0c6a4f")),  # another connection's path
        (URL, URL.replace("https:", "http:")),  # another scheme
        (URL, URL.replace("stats.example.com", "evil.example.com")),  # another host
        (URL, URL.replace("stats.example.com", "stats.example.com:80")),  # any port is also tried removed
        ("https://h.example/webhooks/twilio/x?", "https://h.example/webhooks/twilio/x"),
    ],
)
def test_urls_with_and_without_their_port_are_judged_as_the_validator_judges_them(
    signed_url: str, requested_url: str
) -> None:
    """Our verdict on the URL the request reached equals the validator's, whichever way it goes."""
    signature = signed(signed_url, COMPLETED)
    assert twilio.signature_valid(TOKEN, requested_url, COMPLETED, signature) == oracle(
        requested_url, COMPLETED, signature
    )


def test_the_default_port_is_accepted_either_way() -> None:
    """Twilio may sign with or without :443; both requests pass (the reason the check tries both)."""
    with_port = URL.replace("stats.example.com", "stats.example.com:443")
    assert twilio.signature_valid(TOKEN, with_port, COMPLETED, signed(URL, COMPLETED))
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, signed(with_port, COMPLETED))


def test_a_missing_or_foreign_signature_is_refused() -> None:
    """No header, an empty one, another token's signature, or an empty token: refused, no exception."""
    signature = signed(URL, COMPLETED)
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, None) is False
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, "") is False
    assert twilio.signature_valid("another-token", URL, COMPLETED, signature) is False
    assert twilio.signature_valid("", URL, COMPLETED, signature) is False
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, signature + "=") is False
    assert oracle(URL, COMPLETED, "") is False


def test_a_url_whose_port_does_not_parse_is_refused_not_raised() -> None:
    """The validator raises on such a URL; our verdict is a plain refusal."""
    assert twilio.signature_valid(TOKEN, "https://stats.example.com:99999/x", COMPLETED, "sig") is False
    assert twilio.signature_valid(TOKEN, "https://stats.example.com:port/x", COMPLETED, "sig") is False


def test_repeated_parameters_are_signed_as_the_validator_signs_them() -> None:
    """A name sent several times: its distinct values sorted, each after the name (a repeat dropped)."""
    params = {**COMPLETED, "Tag": ["b", "a", "b"]}
    signature = signed(URL, params)
    assert twilio.signature_valid(TOKEN, URL, params, signature)
    assert oracle(URL, params, signature)
    for other in ({**COMPLETED, "Tag": ["a"]}, {**COMPLETED, "Tag": ["a", "b", "c"]}):
        assert twilio.signature_valid(TOKEN, URL, other, signature) is False
        assert oracle(URL, other, signature) is False
    assert twilio.signature_valid(TOKEN, URL, {**COMPLETED, "Tag": ["a", "b"]}, signature)


def test_a_shared_key_signature_uses_the_algorithm_its_settings_header_names() -> None:
    """X-Twilio-Webhooks-Signature-Settings names HMAC_SHA256: accepted with it, refused without it."""
    signature = signed(URL, COMPLETED, "HMAC_SHA256")
    header = "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256"
    assert twilio.signature_algorithm(header) == "HMAC_SHA256"
    assert twilio.signature_algorithm(None) == "HMAC_SHA1"
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, signature, header)
    assert oracle(URL, COMPLETED, signature, "HMAC_SHA256")
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, signature) is False
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, signed(URL, COMPLETED), header) is False


def test_an_unsupported_algorithm_is_refused_by_both() -> None:
    """An algorithm neither knows (a newer one) fails validation."""
    signature = signed(URL, COMPLETED)
    assert twilio.signature_valid(TOKEN, URL, COMPLETED, signature, "key=k,algorithm=HMAC_MD5") is False
    assert oracle(URL, COMPLETED, signature, "HMAC_MD5") is False


def test_a_form_body_parses_to_the_parameters_twilio_signed() -> None:
    """form_params keeps blank values, repeats and UTF-8 text: the signature over them holds."""
    pairs = [*COMPLETED.items(), ("CallerName", "Zoë Ünal"), ("Tag", "x"), ("Tag", "y")]
    body = urlencode(pairs).encode()
    params = twilio.form_params(body)
    assert params["ForwardedFrom"] == [""]
    assert params["Tag"] == ["x", "y"]
    assert params["CallerName"] == ["Zoë Ünal"]
    assert twilio.signature_valid(TOKEN, URL, params, signed(URL, params))
    assert twilio.signature_valid(TOKEN, URL, params, signed(URL, COMPLETED)) is False


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    params=st.dictionaries(_TEXT.filter(bool), st.lists(_TEXT, min_size=1, max_size=3), max_size=6),
    signed_port=st.sampled_from(["", ":443", ":80", ":8443"]),
    port=st.sampled_from(["", ":443", ":80", ":8443"]),
    scheme=st.sampled_from(["https", "http"]),
    forged=st.booleans(),
)
def test_any_form_and_url_get_the_validators_verdict(
    params: dict[str, list[str]], signed_port: str, port: str, scheme: str, forged: bool
) -> None:
    """For random forms, ports and schemes, signed or forged, our verdict is the validator's."""
    path = "/webhooks/twilio/x?campaign_id=c"
    url = f"{scheme}://stats.example.com{port}{path}"
    signature = signed(f"{scheme}://stats.example.com{signed_port}{path}", params)
    if forged:
        signature = signature[:-2] + ("A=" if signature[-2] != "A" else "B=")
    assert twilio.signature_valid(TOKEN, url, params, signature) == oracle(url, params, signature)


# -- the mapping -----------------------------------------------------------------------------------


def callback(**changes: str) -> dict[str, str]:
    """COMPLETED with `changes`; a value of "" removes the parameter."""
    merged = {**COMPLETED, **changes}
    return {name: value for name, value in merged.items() if value != "" or name == "ForwardedFrom"}


@pytest.mark.parametrize(
    ("status", "stage", "kind"),
    [
        ("queued", "queued", "call.started"),
        ("initiated", "initiated", "call.started"),
        ("ringing", "ringing", "call.started"),
        ("in-progress", "answered", "call.answered"),
    ],
)
def test_progress_statuses_start_or_answer_the_call(status: str, stage: str, kind: str) -> None:
    """queued, initiated and ringing start the call; in-progress answers it; each stage its own id."""
    found = twilio.facts(callback(CallStatus=status, CallDuration=""), RECEIVED, {})
    assert found.events == (CarrierEvent(f"twilio:{SID}:{stage}", kind, AT),)
    assert (found.call_id, found.phone, found.raw_outcome, found.unmatched) == (
        SID,
        "+14155550100",
        None,
        None,
    )
    assert (found.campaign_id, found.contact_id) == (None, None)


@pytest.mark.parametrize(
    ("changes", "outcome", "duration", "raw"),
    [
        ({}, "answered", 42, "completed"),
        ({"AnsweredBy": "human"}, "answered", 42, "human"),
        ({"AnsweredBy": "unknown"}, "answered", 42, "unknown"),
        ({"AnsweredBy": "machine_start"}, "voicemail", 0, "machine_start"),
        ({"AnsweredBy": "machine_end_beep"}, "voicemail", 0, "machine_end_beep"),
        ({"AnsweredBy": "machine_end_silence"}, "voicemail", 0, "machine_end_silence"),
        ({"AnsweredBy": "machine_end_other"}, "voicemail", 0, "machine_end_other"),
        ({"AnsweredBy": "fax"}, "failed", 0, "fax"),
        ({"CallStatus": "busy", "CallDuration": "0"}, "busy", 0, "busy"),
        ({"CallStatus": "no-answer", "CallDuration": "0"}, "no_answer", 0, "no-answer"),
        ({"CallStatus": "failed", "CallDuration": "0"}, "failed", 0, "failed"),
        ({"CallStatus": "canceled", "CallDuration": ""}, "failed", 0, "canceled"),
        ({"CallStatus": "busy", "AnsweredBy": "human"}, "busy", 0, "busy"),  # AnsweredBy only on completed
    ],
)
def test_final_statuses_end_the_call_with_their_outcome(
    changes: dict[str, str], outcome: str, duration: int, raw: str
) -> None:
    """Each final status and AnsweredBy value ends the call as the issue's table says; talk time only
    for an answered call; the raw outcome is the value that decided."""
    found = twilio.facts(callback(**changes), RECEIVED, {})
    assert found.events == (CarrierEvent(f"twilio:{SID}:completed", "call.ended", AT, outcome, duration),)
    assert found.raw_outcome == f"twilio:{raw}"
    assert found.unmatched is None


def test_every_default_outcome_is_one_of_ours() -> None:
    """The table maps onto our five outcomes and covers every outcome Twilio can give."""
    assert set(twilio.DEFAULT_OUTCOMES.values()) == {"answered", "busy", "no_answer", "failed", "voicemail"}
    assert set(twilio.ENDED) - {"completed"} <= set(twilio.DEFAULT_OUTCOMES)


def test_unknown_statuses_and_answered_by_values_are_never_guessed() -> None:
    """A status or AnsweredBy value not in the table: no events, the reason says which."""
    status = twilio.facts(callback(CallStatus="teleported"), RECEIVED, {})
    assert (status.events, status.unmatched) == ((), "unknown CallStatus 'teleported'")
    answered_by = twilio.facts(callback(AnsweredBy="machine_poetry"), RECEIVED, {})
    assert (answered_by.events, answered_by.unmatched) == ((), "unknown AnsweredBy 'machine_poetry'")
    assert answered_by.raw_outcome == "twilio:machine_poetry"


def test_the_connections_outcome_map_wins() -> None:
    """Overrides change a known value's outcome and give an unknown one an outcome."""
    overrides = {"no-answer": "busy", "machine_poetry": "voicemail", "machine_start": "answered"}
    no_answer = twilio.facts(callback(CallStatus="no-answer", CallDuration="0"), RECEIVED, overrides)
    assert no_answer.events[0].outcome == "busy"
    poetry = twilio.facts(callback(AnsweredBy="machine_poetry"), RECEIVED, overrides)
    assert (poetry.events[0].outcome, poetry.unmatched) == ("voicemail", None)
    machine = twilio.facts(callback(AnsweredBy="machine_start"), RECEIVED, overrides)
    assert machine.events[0][3:] == ("answered", 42)  # an answered call carries its talk time


def test_an_answered_call_without_its_duration_is_unmatched() -> None:
    """Talk time is not guessed: a completed callback without a whole CallDuration is unmatched."""
    for duration in ("", "4.5", "-3"):
        found = twilio.facts(callback(CallDuration=duration), RECEIVED, {})
        assert (found.events, found.unmatched) == ((), "answered call without a CallDuration")


@pytest.mark.parametrize(
    ("timestamp", "at"),
    [
        ("Tue, 16 Jan 2024 09:01:40 +0000", AT),
        ("Tue, 16 Jan 2024 04:01:40 -0500", AT),
        ("Tue, 16 Jan 2024 09:01:40 -0000", AT),  # no zone information: UTC
        ("", None),  # absent: when received
        ("yesterday", None),  # not RFC 2822: when received
    ],
)
def test_the_event_happens_at_twilios_timestamp_else_when_received(timestamp: str, at: int | None) -> None:
    """occurred_at from Timestamp (RFC 2822), else the time received."""
    received = RECEIVED + 1_234
    found = twilio.facts(callback(Timestamp=timestamp), received, {})
    assert found.events[0].occurred_at_ms == (received if at is None else at)


def test_a_redelivered_callback_gives_the_same_events_and_each_stage_its_own() -> None:
    """A retry is identical (a duplicate for the store); the stages of one call never share an id."""
    first = twilio.facts(callback(), RECEIVED, {})
    assert twilio.facts(callback(), RECEIVED + 30_000, {}) == first
    stages = ["queued", "initiated", "ringing", "in-progress", "completed"]
    ids = [twilio.facts(callback(CallStatus=status), RECEIVED, {}).events[0].event_id for status in stages]
    assert len(set(ids)) == len(stages)


def test_callbacks_missing_what_identifies_them() -> None:
    """No CallSid or no CallStatus is unmatched; an asynchronous AMD result alone changes nothing."""
    assert twilio.facts(callback(CallSid=""), RECEIVED, {}).unmatched == "no CallSid"
    assert twilio.facts(callback(CallStatus=""), RECEIVED, {}).unmatched == "no CallStatus"
    amd_result = {"CallSid": SID, "AnsweredBy": "machine_start", "MachineDetectionDuration": "2400"}
    amd = twilio.facts(amd_result, RECEIVED, {})
    assert (amd.events, amd.unmatched, amd.raw_outcome) == ((), None, None)


def test_a_repeated_parameter_is_read_by_its_first_value() -> None:
    """Mapping reads the first value of a name sent more than once."""
    params: dict[str, str | list[str]] = {
        **callback(),
        "CallStatus": ["busy", "completed"],
        "CallDuration": ["0"],
    }
    found = twilio.facts(params, RECEIVED, {})
    assert found.events[0].outcome == "busy"
