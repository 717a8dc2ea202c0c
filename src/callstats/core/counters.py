"""A campaign's counter values and every delta that moves them. Pure.

`moved` is the one place counter deltas are made: for an applied event (the seed
counters from the lifecycle's transition, plus attempts, the attempts-per-contact
and talk-time histograms, the per-minute series and the ended calls by raw carrier
outcome), for contacts added and for a campaign created. db/counters.py writes a
`CounterDelta` to one counter slot in the same transaction as the rows it
summarizes, and reads `Counters` back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from callstats.core.histogram import talk_bucket
from callstats.core.lifecycle import ENDED, FAILED, PENDING, CallState, ContactState, Transition
from callstats.core.outcomes import OUTCOMES

MINUTE_MS = 60_000


def minute_of(epoch_ms: int) -> int:
    """The UTC epoch minute a time falls in."""
    return epoch_ms // MINUTE_MS


@dataclass(frozen=True)
class Counters:
    """A campaign's numbers, summed over its counter slots."""

    campaign_id: str
    campaign_name: str
    total: int = 0
    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    talk_seconds: int = 0
    breakdown: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    first_call_at: int | None = None
    last_final_at: int | None = None


@dataclass
class CounterDelta:
    """Deltas gathered over one transaction for one campaign, written to one slot at its end.

    `columns` are the campaign_counters columns (seed counters, talk time, attempts);
    `histogram` is keyed by (kind, bucket): kind "a" counts contacts by attempts made, "t"
    answered calls by talk-time bucket; `series` by (UTC epoch minute, series column);
    `raw_outcomes` counts the calls ended with a raw carrier outcome, by that outcome.
    `first_call_at`, `last_final_at` and `last_event_at` are epoch ms (the slot keeps the MIN of the
    first and the MAX of the others).
    `ensure_row` writes the counters row even when every delta is zero (a new campaign).
    """

    columns: Counter[str] = field(default_factory=Counter)
    histogram: Counter[tuple[str, int]] = field(default_factory=Counter)
    series: Counter[tuple[int, str]] = field(default_factory=Counter)
    raw_outcomes: Counter[str] = field(default_factory=Counter)
    first_call_at: int | None = None
    last_final_at: int | None = None
    last_event_at: int | None = None
    ensure_row: bool = False

    def __bool__(self) -> bool:
        """Whether the counters row changes (histograms, minutes and raw outcomes are written apart)."""
        return (
            any(self.columns.values())
            or self.first_call_at is not None
            or self.last_final_at is not None
            or self.last_event_at is not None
        )


class EventApplied(NamedTuple):
    """An event the lifecycle applied: the states before it, its transition, and when the server
    received it (epoch ms, the server's clock: the campaign's `last_event_at` when it changed anything)."""

    contact_before: ContactState
    call_before: CallState | None
    transition: Transition
    received_at: int


class ContactsAdded(NamedTuple):
    """`contacts` new contacts, each pending with no attempt made."""

    contacts: int


class CampaignCreated(NamedTuple):
    """A new campaign: its counters row exists (all zero) from the start."""


Change = EventApplied | ContactsAdded | CampaignCreated


def moved(change: Change, into: CounterDelta | None = None) -> CounterDelta:
    """Every counter delta that moves with `change`, added to `into` (a new CounterDelta when None).

    Returns `into`. Gathering a transaction's changes into one CounterDelta costs no allocation
    per event beyond the Counter entries.
    """
    delta = CounterDelta() if into is None else into
    if isinstance(change, EventApplied):
        _event(delta, change)
    elif isinstance(change, ContactsAdded):
        delta.columns["total"] += change.contacts
        delta.columns[PENDING] += change.contacts
        delta.histogram[("a", 0)] += change.contacts
    else:
        delta.ensure_row = True
    return delta


def _event(delta: CounterDelta, applied: EventApplied) -> None:
    """An applied transition: the lifecycle's seed deltas, then attempts, histograms, minutes and raw
    outcomes (a call ends once, so its raw outcome counts once), and the time it was received."""
    before, call_before, transition = applied.contact_before, applied.call_before, applied.transition
    call = transition.call
    if transition.effect != "applied" or call is None:
        return
    if delta.last_event_at is None or applied.received_at > delta.last_event_at:
        delta.last_event_at = applied.received_at
    for name, amount in transition.deltas.items():
        delta.columns[name] += amount
    started_at, finalized_at = transition.started_at, transition.finalized_at
    if started_at is not None and (delta.first_call_at is None or started_at < delta.first_call_at):
        delta.first_call_at = started_at
    if finalized_at is not None and (delta.last_final_at is None or finalized_at > delta.last_final_at):
        delta.last_final_at = finalized_at
    if transition.started_call:
        delta.columns["attempts"] += 1
        delta.histogram[("a", before.attempts)] -= 1
        delta.histogram[("a", transition.contact.attempts)] += 1
        delta.series[(minute_of(call.started_at), "starts")] += 1
    elif transition.moved_start_from is not None:  # the start moves: so does its minute's count
        delta.series[(minute_of(transition.moved_start_from), "starts")] -= 1
        delta.series[(minute_of(call.started_at), "starts")] += 1
    ended_now = call.status == ENDED and (call_before is None or call_before.status != ENDED)
    if ended_now and call.outcome is not None and call.ended_at is not None:
        _ended(delta, call.outcome, call.ended_at, call.duration_seconds or 0)
        if call.raw_outcome is not None:
            delta.raw_outcomes[call.raw_outcome] += 1
        if transition.contact.state == FAILED and before.state != FAILED:
            delta.series[(minute_of(call.ended_at), "finals_failed")] += 1


def _ended(delta: CounterDelta, outcome: str, ended_at: int, duration: int) -> None:
    minute = minute_of(ended_at)
    delta.columns["att_" + outcome] += 1
    delta.series[(minute, outcome)] += 1
    if outcome == "answered":
        delta.histogram[("t", talk_bucket(duration))] += 1
        delta.series[(minute, "talk_seconds")] += duration
