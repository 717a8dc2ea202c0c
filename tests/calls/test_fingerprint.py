"""The hand-written body fingerprint and cached UUID check agree with the model's own dump."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import orjson
import pytest

from callstats.calls.schemas import CallEventIn, EventRules, parse_event

ANY_TIME = EventRules(earliest_ms=-(10**15), max_ahead_ms=10**15)  # the hash covers every time, 1969 included

CAMPAIGN = "0b8e6f2c-3a4d-4e5f-8a9b-0c1d2e3f4a5b"


def reference_hash(event: CallEventIn) -> str:
    """How the fingerprint was first computed: stored hashes were made this way. `raw_outcome`, added
    later, is in it only when set (the hashes stored before it stay valid)."""
    unset = {"raw_outcome"} if event.raw_outcome is None else set()
    canonical = event.model_dump(mode="json", exclude={"occurred_at", *unset})
    canonical["occurred_at"] = event.occurred_ms
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def variants() -> list[dict[str, Any]]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "campaign_id": CAMPAIGN,
        "call_id": "c1",
        "occurred_at": "2024-01-16T09:00:00Z",
    }
    addressing: list[dict[str, Any]] = [
        {"contact_id": 7},
        {"contact_id": 2**63 - 1},
        {"phone": "+14155550100"},
        {"phone": "  (415) 555-0100 "},
        {"contact_id": 3, "phone": "+442071838750"},
    ]
    kinds: list[dict[str, Any]] = [
        {"type": "call.started"},
        {"type": "call.answered"},
        {"type": "call.ended", "outcome": "busy"},
        {"type": "call.ended", "outcome": "answered", "duration_seconds": 125},
        {"type": "call.ended", "outcome": "failed", "duration_seconds": 9},
        {"type": "call.ended", "outcome": "no_answer", "raw_outcome": "twilio:no-answer"},
        {"type": "call.ended", "outcome": "busy", "raw_outcome": "  retell:dial_busy "},
    ]
    others: list[dict[str, Any]] = [
        {},
        {"campaign_id": CAMPAIGN.upper()},
        {"campaign_id": "{" + CAMPAIGN + "}"},
        {"campaign_id": CAMPAIGN.replace("-", "")},
        {"campaign_id": " urn:uuid:" + CAMPAIGN + " "},
        {"occurred_at": "2024-01-16T09:00:00.123456+02:00"},
        {"occurred_at": "2024-01-16T09:00:00"},
        {"occurred_at": 1705395600},
        {"occurred_at": "1969-12-31T23:59:59.9995Z"},
        {"event_id": " spaced \u00e9v\u00e9nement ", "call_id": "\u2603"},
        {"extra": "ignored", "event_id": "x" * 128},
    ]
    return [{**base, **a, **k, **o} for a, k, o in itertools.product(addressing, kinds, others)]


@pytest.mark.parametrize("item", variants())
def test_body_hash_matches_the_model_dump(item: dict[str, Any]) -> None:
    event = parse_event(item, ANY_TIME)
    assert isinstance(event, CallEventIn), event
    assert event.body_hash() == reference_hash(event)
    assert vars(event).get("occurred_ms") == event.occurred_ms  # computed once (kept on the event)
    assert event.body_hash() == reference_hash(event)


@pytest.mark.parametrize(
    ("sent", "epoch_ms"),
    [
        ("2024-01-16T09:00:00Z", 1_705_395_600_000),
        ("2024-01-16T11:00:00.123+02:00", 1_705_395_600_123),
        ("2024-01-16T09:00:00.999999", 1_705_395_600_999),  # no offset: UTC; microseconds cut, not rounded
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_occurred_ms_is_set_by_validation(sent: str, epoch_ms: int) -> None:
    """The validator fills occurred_ms as it builds the event (no first-read cost on the hot path)."""
    event = CallEventIn.model_validate({**variants()[0], "occurred_at": sent})
    assert vars(event)["occurred_ms"] == epoch_ms  # there before anything read it
    assert event.occurred_ms == epoch_ms
    assert "occurred_ms" not in event.model_dump()  # not a field: the body and its hash are unchanged


def test_body_hash_covers_every_field() -> None:
    event = parse_event(variants()[0])
    assert isinstance(event, CallEventIn)
    assert set(CallEventIn.model_fields) == set(event.model_dump(mode="json"))
    assert list(CallEventIn.model_fields) == [
        "event_id",
        "campaign_id",
        "contact_id",
        "phone",
        "call_id",
        "type",
        "outcome",
        "raw_outcome",
        "duration_seconds",
        "occurred_at",
    ]  # a new field must be added to body_hash too (and old hashes kept)


def test_a_known_fingerprint_is_stable() -> None:
    """The hash the previous release stored for this body."""
    event = parse_event({**variants()[0], "contact_id": 7, "type": "call.started"})
    assert isinstance(event, CallEventIn)
    assert event.body_hash() == "e052c7117221797eebabb3104c720a15b1fa3945fb6f702badbbf9528680851e"


def test_raw_outcome_changes_the_fingerprint_only_when_set() -> None:
    """An ended event's hash is the previous release's without raw_outcome, and another with one: a
    redelivery that adds or changes the raw outcome is a different body (CONFLICT), not a duplicate."""
    ended = {**variants()[0], "contact_id": 7, "type": "call.ended", "outcome": "busy"}
    plain, raw, other = (
        parse_event({**ended, **extra}, ANY_TIME)
        for extra in ({}, {"raw_outcome": "twilio:busy"}, {"raw_outcome": "twilio:no-answer"})
    )
    assert isinstance(plain, CallEventIn) and isinstance(raw, CallEventIn) and isinstance(other, CallEventIn)
    assert (
        plain.body_hash() == "148a15e76d55dc892dd2ce211337fc7d3476998f1685dcbd92b75c433612d572"
    )  # as before
    assert len({plain.body_hash(), raw.body_hash(), other.body_hash()}) == 3
    assert raw.body_hash() == reference_hash(raw)


@pytest.mark.parametrize("campaign", ["", "nope", CAMPAIGN[:-1], 5, None, CAMPAIGN + "0"])
def test_bad_campaign_ids_fail_the_same_every_time(campaign: Any) -> None:
    item = {**variants()[0], "campaign_id": campaign}
    first, second = parse_event(item), parse_event(item)
    assert isinstance(first, str) and first == second
