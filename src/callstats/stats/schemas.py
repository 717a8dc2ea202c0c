"""Response shapes of getCampaignStats (and the stream's messages): declared once, typed and documented.

Role: the schemas of stats/.

`stats/response.py` builds its answers as these TypedDicts (mypy checks every key and type it writes)
and `/openapi.json` describes the route from the same declarations (pydantic writes their JSON
Schema), so the document cannot drift from the bytes the hot path sends. Plain dicts at run time:
the hot path pays nothing for them.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict

from callstats.core.outcomes import OUTCOMES

Section = Literal["attempts", "durations", "raw_outcomes"]
"""An extra section `?include=` may ask for, beyond the seed's response."""


class StatusBreakdown(TypedDict):
    """Contacts by latest call outcome (the seed's call_status_breakdown); also attempts by outcome."""

    answered: int
    busy: int
    no_answer: int
    failed: int
    voicemail: int


assert tuple(StatusBreakdown.__annotations__) == OUTCOMES


class AttemptsPerContact(TypedDict):
    """How many contacts made exactly `attempts` call attempts."""

    attempts: int
    contacts: int


class AttemptsSection(TypedDict):
    """`?include=attempts`: every call attempt, by outcome, and the attempts-per-contact histogram."""

    total: int
    by_outcome: StatusBreakdown
    per_contact: list[AttemptsPerContact]


class DurationBucket(TypedDict):
    """Answered calls whose talk time is at most `le` seconds (and above the previous bucket's edge)."""

    le: int
    count: int


class DurationsSection(TypedDict):
    """`?include=durations`: talk-time percentiles of answered calls, seconds, at most 5% above exact."""

    answered_calls: int
    p50: int
    p90: int
    p99: int
    percentile_error_bound: float
    histogram: list[DurationBucket]


class CampaignStats(TypedDict):
    """The seed's getCampaignStats `data`, field for field (docs/semantics.md defines each number).

    Times are ISO 8601 UTC (`2024-01-16T09:00:00Z`, milliseconds when there are some); `started_at`
    is null before the first call, `completed_at` while any contact is pending or in progress.
    Durations are whole seconds; `success_rate` is a percentage, 0-100, two decimals.
    """

    campaign_id: str
    campaign_name: str
    total_contacts: int
    calls_completed: int
    calls_failed: int
    calls_in_progress: int
    calls_pending: int
    success_rate: float
    average_call_duration: int
    total_call_duration: int
    call_status_breakdown: StatusBreakdown
    started_at: str | None
    completed_at: str | None
    attempts: NotRequired[AttemptsSection]
    durations: NotRequired[DurationsSection]
    raw_outcomes: NotRequired[dict[str, int]]
    """`?include=raw_outcomes`: ended calls by the carrier's raw outcome, `{"twilio:no-answer": 3}`,
    every attempt counted, in code point order; calls ended without a raw outcome are not in it."""


class StatsEnvelope(TypedDict):
    """getCampaignStats' answer: the seed's envelope around CampaignStats."""

    success: Literal[True]
    data: CampaignStats
