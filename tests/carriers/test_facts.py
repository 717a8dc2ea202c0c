"""The shapes and small rules every carrier module shares (callstats.carriers.facts), pure."""

from __future__ import annotations

import pytest

from callstats.carriers import facts


def test_event_ids_and_raw_outcomes_name_provider_call_and_stage() -> None:
    """`<provider>:<call id>:<stage>` for an event, `<provider>:<raw>` for a raw outcome."""
    assert facts.event_id("twilio", "CA1", "completed") == "twilio:CA1:completed"
    assert facts.raw_outcome("retell", "dial_busy") == "retell:dial_busy"


def test_an_override_wins_over_the_default_and_unknowns_stay_unknown() -> None:
    """outcome_of reads the connection's overrides first, then the provider's table, else None."""
    defaults = {"ivr_reached": "voicemail", "dial_busy": "busy"}
    overrides = {"ivr_reached": "answered", "brand_new": "failed"}
    assert facts.outcome_of("ivr_reached", defaults, overrides) == "answered"
    assert facts.outcome_of("dial_busy", defaults, overrides) == "busy"
    assert facts.outcome_of("brand_new", defaults, overrides) == "failed"
    assert facts.outcome_of("never_seen", defaults, overrides) is None
    assert facts.merged(defaults, overrides) == {
        "ivr_reached": "answered",
        "dial_busy": "busy",
        "brand_new": "failed",
    }


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [(0, 0, 0), (0, 499, 0), (0, 500, 1), (1_000, 3_499, 2), (1_000, 3_500, 3), (5, 4, None)],
)
def test_talk_time_rounds_half_up_and_refuses_an_end_before_the_start(
    start: int, end: int, seconds: int | None
) -> None:
    """Whole seconds between two epoch-ms instants, half up; None when time runs backwards."""
    assert facts.talk_seconds(start, end) == seconds


def test_metadata_ids_are_strings_or_none() -> None:
    """campaign_id and contact_id as strings (an int contact id too); objects, lists and bools are None."""
    assert facts.metadata_ids({"campaign_id": "c-1", "contact_id": 7}) == ("c-1", "7")
    assert facts.metadata_ids({"campaign_id": {"id": 1}, "contact_id": True}) == (None, None)
    assert facts.metadata_ids({"campaign_id": "", "contact_id": ["7"]}) == (None, None)
    assert facts.metadata_ids(None) == (None, None)
    assert facts.metadata_ids("campaign_id=c-1") == (None, None)


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (7, 7),
        (7.0, 7),
        ("42", 42),
        (" 42 ", 42),
        (True, None),
        (7.5, None),
        ("4.2", None),
        ("٤٢", None),
        (None, None),
    ],
)
def test_integer_reads_only_whole_numbers(value: object, read: int | None) -> None:
    """Ints, integral floats and ASCII digit strings; not bools, fractions or other digits."""
    assert facts.integer(value) == read
