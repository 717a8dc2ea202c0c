"""Figures beyond the seed's, derived from one lifecycle transition. Pure.

Attempt counters, the attempts-per-contact and talk-time histograms, and the
per-minute time series all move with the same transitions as the seed's
counters and are written in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from callstats.calls.lifecycle import ENDED, FAILED, CallState, ContactState, Transition
from callstats.stats.histogram import talk_bucket

MINUTE_MS = 60_000


@dataclass
class ExtraDeltas:
    """Changes to the attempt columns, histogram buckets and minute buckets."""

    columns: Counter[str] = field(default_factory=Counter)
    histogram: Counter[tuple[str, int]] = field(default_factory=Counter)
    series: Counter[tuple[int, str]] = field(default_factory=Counter)


def minute_of(epoch_ms: int) -> int:
    """The UTC epoch minute a time falls in."""
    return epoch_ms // MINUTE_MS


def add_extra_deltas(
    extras: ExtraDeltas, before: ContactState, call_before: CallState | None, transition: Transition
) -> None:
    """Add what an applied transition adds to the extra figures to `extras` (no allocation per event)."""
    call = transition.call
    if transition.effect != "applied" or call is None:
        return
    if transition.started_call:
        extras.columns["attempts"] += 1
        extras.histogram[("a", before.attempts)] -= 1
        extras.histogram[("a", transition.contact.attempts)] += 1
        extras.series[(minute_of(call.started_at), "starts")] += 1
    elif transition.moved_start_from is not None:  # the start moves: so does its minute's count
        extras.series[(minute_of(transition.moved_start_from), "starts")] -= 1
        extras.series[(minute_of(call.started_at), "starts")] += 1
    ended_now = call.status == ENDED and (call_before is None or call_before.status != ENDED)
    if ended_now and call.outcome is not None and call.ended_at is not None:
        _ended(extras, call.outcome, call.ended_at, call.duration_seconds or 0)
        if transition.contact.state == FAILED and before.state != FAILED:
            extras.series[(minute_of(call.ended_at), "finals_failed")] += 1


def _ended(extras: ExtraDeltas, outcome: str, ended_at: int, duration: int) -> None:
    minute = minute_of(ended_at)
    extras.columns["att_" + outcome] += 1
    extras.series[(minute, outcome)] += 1
    if outcome == "answered":
        extras.histogram[("t", talk_bucket(duration))] += 1
        extras.series[(minute, "talk_seconds")] += duration
