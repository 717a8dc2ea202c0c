"""The dialer's calls as platform callbacks (callstats.demo.platforms), pure: read back by the carriers'
own modules they are the simulation's calls, outcome and talk time included, and their signatures
hold for the connection's secret only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from callstats.carriers import retell, twilio, vapi
from callstats.carriers.facts import CallFacts, CarrierEvent
from callstats.core.outcomes import OUTCOMES
from callstats.demo import platforms
from callstats.demo.platforms import Callback, DemoCall
from callstats.demo.simulation import SimEvent

CALL = DemoCall("5d0d8a52-6a3e-4b8e-9f57-1c2b3d4e5f60", "+14155550123")
SECRET = "0123456789abcdef0123456789abcdef"
URL = "http://127.0.0.1:8000/webhooks/x/1?campaign_id=5d0d8a52-6a3e-4b8e-9f57-1c2b3d4e5f60"
T0 = 1_714_608_000_000  # epoch ms of the dial
TALK = 137


def simulated_call(outcome: str, call_id: str = "demo-7-1") -> list[tuple[SimEvent, int]]:
    """One simulated call with this outcome, each event with the epoch ms it happened at."""
    duration = TALK if outcome in ("answered", "voicemail") else 0
    events = [(SimEvent(0.0, "call.started", 7, call_id), T0)]
    if outcome == "answered":
        events.append((SimEvent(9.5, "call.answered", 7, call_id), T0 + 2_345))
    events.append((SimEvent(150.0, "call.ended", 7, call_id, outcome, duration), T0 + 5_678))
    return events


def read_back(provider: str, callback: Callback, received_ms: int) -> CallFacts:
    """What the carriers' module for `provider` makes of one callback."""
    if provider == "twilio":
        assert callback.form is not None and callback.payload is None
        return twilio.facts(callback.form, received_ms, {})
    assert callback.payload is not None and callback.form is None
    if provider == "retell":
        return retell.facts(callback.payload, received_ms, {})
    return vapi.facts(callback.payload, received_ms, {})


def facts_of_call(provider: str, outcome: str, call_id: str = "demo-7-1") -> list[CallFacts]:
    return [
        read_back(provider, callback, at_ms + 50)
        for event, at_ms in simulated_call(outcome, call_id)
        for callback in platforms.callbacks(provider, event, CALL, at_ms)
    ]


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("provider", platforms.PROVIDERS)
def test_a_call_read_back_is_the_simulated_call(provider: str, outcome: str) -> None:
    read = facts_of_call(provider, outcome)
    assert all(f.unmatched is None for f in read), [f.unmatched for f in read]
    assert {f.phone for f in read} == {CALL.phone}
    assert len({f.call_id for f in read}) == 1 and read[0].call_id
    events = [e for f in read for e in f.events]
    final = events[-1]
    assert final.type == "call.ended" and [e.type for e in events].count("call.ended") == 1
    assert final.outcome == outcome
    assert final.duration_seconds == (TALK if outcome == "answered" else 0)
    assert T0 + 4_678 < final.occurred_at_ms <= T0 + 5_678  # Twilio's Timestamp keeps whole seconds
    assert ("call.answered" in [e.type for e in events]) == (outcome == "answered")
    assert [e.occurred_at_ms for e in events] == sorted(e.occurred_at_ms for e in events)
    if provider != "twilio":  # the platforms with call metadata carry the campaign there too
        assert {f.campaign_id for f in read} == {CALL.campaign_id}


def test_each_platform_reports_the_moments_it_really_reports() -> None:
    """Twilio: initiated and ringing at the dial; Retell: nothing until the call connects; Vapi:
    status-update ended (which moves nothing) before the end-of-call-report."""
    stages = {
        p: [e.event_id.rsplit(":", 1)[1] for f in facts_of_call(p, "answered") for e in f.events]
        for p in platforms.PROVIDERS
    }
    assert stages["twilio"] == ["initiated", "ringing", "answered", "completed"]
    assert stages["retell"] == ["started", "answered", "ended"]
    assert stages["vapi"] == ["ringing", "answered", "ended"]
    assert facts_of_call("retell", "busy")[0].events[0].type == "call.ended"
    quiet = [f for f in facts_of_call("vapi", "busy") if not f.events]
    assert len(quiet) == 1 and quiet[0].unmatched is None


def raw_values(provider: str, outcome: str, calls: int = 60) -> set[str]:
    """The raw outcomes the calls of one outcome carry, over many calls."""
    raws = set()
    for n in range(calls):
        final = facts_of_call(provider, outcome, f"demo-{n}-1")[-1]
        assert final.raw_outcome is not None
        raws.add(final.raw_outcome.split(":", 1)[1])
    return raws


@pytest.mark.parametrize(
    ("provider", "table"),
    [
        ("twilio", {**platforms.TWILIO_FINAL, **platforms.TWILIO_ANSWERED_BY}),
        ("retell", platforms.RETELL_REASONS),
        ("vapi", platforms.VAPI_REASONS),
    ],
)
def test_every_raw_value_of_the_demo_tables_is_used_and_maps_to_its_outcome(
    provider: str, table: Mapping[str, Sequence[str]]
) -> None:
    outcome_for: dict[str, Any] = {
        "twilio": lambda raw: twilio.DEFAULT_OUTCOMES.get(raw),
        "retell": lambda raw: retell.outcome_for(raw, {}),
        "vapi": lambda raw: vapi.outcome_for(raw, {}),
    }
    for outcome, raws in table.items():
        if provider == "twilio" and raws == ("completed",):
            continue  # a completed call's raw outcome is its AnsweredBy
        used = raw_values(provider, outcome)
        assert used == set(raws), (outcome, used)
        assert {outcome_for[provider](raw) for raw in used} == {outcome}


def test_the_same_call_always_reads_the_same() -> None:
    for provider in platforms.PROVIDERS:
        assert facts_of_call(provider, "failed", "demo-3-2") == facts_of_call(provider, "failed", "demo-3-2")
        ids = {facts_of_call(provider, "busy", f"demo-{n}-1")[-1].call_id for n in range(20)}
        assert len(ids) == 20


@pytest.mark.parametrize("provider", platforms.PROVIDERS)
def test_a_signed_request_holds_for_its_secret_only(provider: str) -> None:
    event, at_ms = simulated_call("answered")[-1]
    for callback in platforms.callbacks(provider, event, CALL, at_ms):
        body, headers = platforms.signed_request(provider, SECRET, URL, callback, T0)
        lower = {name.lower(): value for name, value in headers.items()}
        for secret, holds in ((SECRET, True), (SECRET[::-1], False)):
            if provider == "twilio":
                assert lower["content-type"] == "application/x-www-form-urlencoded"
                form = twilio.form_params(body)
                assert twilio.signature_valid(secret, URL, form, lower["x-twilio-signature"]) is holds
                assert not twilio.signature_valid(secret, URL + "&x=1", form, lower["x-twilio-signature"])
            elif provider == "retell":
                assert retell.signature_valid(secret, body, lower["x-retell-signature"], T0 + 1) is holds
            else:
                assert vapi.authenticated(secret, lower, body) is holds
                assert "authorization" not in lower and "x-vapi-secret" not in lower


def test_a_twilio_form_is_what_twilio_sends() -> None:
    event, at_ms = simulated_call("voicemail")[-1]
    (callback,) = platforms.callbacks("twilio", event, CALL, at_ms)
    assert callback.form is not None
    form = callback.form
    assert form["CallSid"].startswith("CA") and len(form["CallSid"]) == 34
    assert form["AccountSid"].startswith("AC") and len(form["AccountSid"]) == 34
    assert form["CallStatus"] == "completed" and form["AnsweredBy"].startswith("machine_end_")
    assert form["Timestamp"] == "Thu, 02 May 2024 00:00:05 +0000"
    assert form["CallDuration"] == str(TALK) and form["Duration"] == "3"


def test_an_unknown_provider_is_refused() -> None:
    event, at_ms = simulated_call("busy")[0]
    with pytest.raises(ValueError, match="plivo"):
        platforms.callbacks("plivo", event, CALL, at_ms)


def test_events_keep_their_carrier_event_shape() -> None:
    """The read-back events are CarrierEvents with the provider's ids, never the simulation's."""
    for provider in platforms.PROVIDERS:
        for fact in facts_of_call(provider, "answered"):
            for event in fact.events:
                assert isinstance(event, CarrierEvent)
                assert event.event_id.startswith(f"{provider}:") and "demo-7-1" not in event.event_id
