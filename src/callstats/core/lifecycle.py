"""The lifecycle: every call and contact state change goes through `apply`. Pure.

Given a contact, its call (or None when the call is unseen), an event and the
campaign's retry rules, `apply` returns the new states and the seed counters'
deltas that move with them; `counters.moved` adds the other figures' deltas
(attempts, histograms, minutes), and the storage layer writes all of it in one
transaction.

The states and the transition are NamedTuples and each new state is the old one's `_replace`:
about half the cost of a frozen dataclass's constructor (docs/performance.md, issue 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

DEFAULT_RETRY_ON: Final = ("busy", "no_answer", "voicemail", "failed")
DEFAULT_MAX_ATTEMPTS: Final = 3

PENDING: Final = "pending"
IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
FINAL_STATES: Final = frozenset({COMPLETED, FAILED})

LIVE: Final = "live"
ENDED: Final = "ended"

Effect = Literal["applied", "no_change", "rejected"]
NO_DELTAS: Final[Mapping[str, int]] = MappingProxyType({})  # read-only: every Transition shares it


@dataclass(frozen=True)
class RetryRules:
    """A campaign's retry settings."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_on: frozenset[str] = frozenset(DEFAULT_RETRY_ON)


class ContactState(NamedTuple):
    """What the lifecycle needs to know of a contact."""

    contact_id: int
    state: str = PENDING
    attempts: int = 0
    live_call_id: str | None = None
    last_outcome: str | None = None
    finalized_at: int | None = None
    last_call_at: int | None = None  # the latest attempt's started_at (drill-down's last_call_at)


class CallState(NamedTuple):
    """One dial of one contact.

    `started_at` is the earliest `occurred_at` of the call's `call.started` events once one has
    arrived (`start_reported`), and until then the time of the event that opened the call.
    `raw_outcome` is the carrier's own word for how the call ended (`twilio:no-answer`), kept from
    the call.ended that ended it when that event carried one.
    """

    call_id: str
    contact_id: int
    attempt: int
    started_at: int
    status: str = LIVE
    answered_at: int | None = None
    ended_at: int | None = None
    outcome: str | None = None
    duration_seconds: int | None = None
    start_reported: bool = False
    raw_outcome: str | None = None


class CallEvent(NamedTuple):
    """A validated call event; times are epoch milliseconds (a named tuple, like the states)."""

    type: str
    call_id: str
    occurred_at: int
    outcome: str | None = None
    duration_seconds: int = 0
    raw_outcome: str | None = None  # call.ended only: the carrier's raw outcome, when it gave one


class Transition(NamedTuple):
    """The outcome of applying one event."""

    effect: Effect
    contact: ContactState
    call: CallState | None
    deltas: Mapping[str, int] = NO_DELTAS
    reason: str | None = None
    started_call: bool = False
    moved_start_from: int | None = None  # the call's start before a call.started moved it

    @property
    def started_at(self) -> int | None:
        """When the call began, if this event started it or moved its start (the campaign's MIN takes it)."""
        moved = self.started_call or self.moved_start_from is not None
        return self.call.started_at if moved and self.call else None

    @property
    def start_raised(self) -> bool:
        """Whether a late first call.started moved the call's start later (the campaign's MIN is redone)."""
        return (
            self.moved_start_from is not None
            and self.call is not None
            and self.call.started_at > self.moved_start_from
        )

    @property
    def finalized_at(self) -> int | None:
        """When the contact became final by this event, if it did."""
        return (
            self.contact.finalized_at if self.deltas.get(COMPLETED, 0) + self.deltas.get(FAILED, 0) else None
        )


def apply(contact: ContactState, call: CallState | None, event: CallEvent, rules: RetryRules) -> Transition:
    """The states after `event` and the counter deltas that move with them."""
    if call is None:
        return _start_unseen(contact, event, rules)
    if call.contact_id != contact.contact_id:
        return _reject(contact, call, "call_id belongs to another contact")
    if event.type == "call.started" and (call.status == ENDED or contact.live_call_id == call.call_id):
        return _restarted(contact, call, event)
    if call.status == ENDED:
        return Transition("no_change", contact, call, reason="call already ended")
    if contact.live_call_id != call.call_id:
        return _reject(contact, call, "call is not the contact's live call")
    if event.type == "call.answered":
        if call.answered_at is not None:
            return Transition("no_change", contact, call, reason="call already answered")
        return Transition("applied", contact, call._replace(answered_at=event.occurred_at))
    return _finish(contact, call, event, rules, {})


def _restarted(contact: ContactState, call: CallState, event: CallEvent) -> Transition:
    """A call.started for a call already open: its start becomes the earliest call.started's time.

    Until a call.started arrives, the call's start is the time of the event that opened it; the
    first call.started replaces that time (earlier or later), the next ones can only lower it.
    Changes nothing else of the contact (even one already final) than its `last_call_at` when the
    call is its latest attempt. Applied when the start moves or becomes reported, else no_change.
    """
    start = min(call.started_at, event.occurred_at) if call.start_reported else event.occurred_at
    if call.start_reported and start == call.started_at:
        return Transition("no_change", contact, call, reason="call already started")
    moved = call._replace(started_at=start, start_reported=True)
    if call.attempt == contact.attempts:
        contact = contact._replace(last_call_at=start)
    return Transition("applied", contact, moved, moved_start_from=call.started_at)


def _reject(contact: ContactState, call: CallState | None, reason: str) -> Transition:
    return Transition("rejected", contact, call, reason=reason)


def _start_unseen(contact: ContactState, event: CallEvent, rules: RetryRules) -> Transition:
    """Start a call never seen before; answered and ended events start it first."""
    if contact.state == IN_PROGRESS:
        return _reject(contact, None, "contact already has a live call")
    if contact.state in FINAL_STATES:
        return _reject(contact, None, f"contact is already {contact.state}")
    if contact.attempts >= rules.max_attempts:
        return _reject(contact, None, "contact has used all its attempts")
    started = contact._replace(
        state=IN_PROGRESS,
        attempts=contact.attempts + 1,
        live_call_id=event.call_id,
        last_call_at=event.occurred_at,
    )
    call = CallState(
        call_id=event.call_id,
        contact_id=contact.contact_id,
        attempt=started.attempts,
        started_at=event.occurred_at,
        answered_at=event.occurred_at if event.type == "call.answered" else None,
        start_reported=event.type == "call.started",
    )
    deltas = {PENDING: -1, IN_PROGRESS: 1}
    if event.type == "call.ended":
        return _finish(started, call, event, rules, deltas, started_call=True)
    return Transition("applied", started, call, deltas, started_call=True)


def _finish(
    contact: ContactState,
    call: CallState,
    event: CallEvent,
    rules: RetryRules,
    deltas: dict[str, int],
    started_call: bool = False,
) -> Transition:
    """End the contact's live call with the event's outcome (and its raw outcome, if any)."""
    outcome = event.outcome or "failed"
    ended = call._replace(
        status=ENDED,
        ended_at=event.occurred_at,
        outcome=outcome,
        duration_seconds=event.duration_seconds,
        raw_outcome=event.raw_outcome,
    )
    state = _state_after(outcome, contact.attempts, rules)
    finished = contact._replace(
        state=state,
        live_call_id=None,
        last_outcome=outcome,
        finalized_at=event.occurred_at if state in FINAL_STATES else None,
    )
    moved = _ended_deltas(deltas, contact.last_outcome, state, outcome, event.duration_seconds)
    return Transition("applied", finished, ended, moved, started_call=started_call)


def _ended_deltas(
    deltas: dict[str, int], last_outcome: str | None, state: str, outcome: str, duration_seconds: int
) -> dict[str, int]:
    """`deltas` plus what ending the live call moves: the contact leaves in_progress for `state`, its
    latest outcome becomes `outcome`, and an answered call adds its talk time; zeros dropped."""
    moved = dict(deltas)
    _add(moved, IN_PROGRESS, -1)
    _add(moved, state, 1)
    if last_outcome is not None:
        _add(moved, "bd_" + last_outcome, -1)
    _add(moved, "bd_" + outcome, 1)
    if outcome == "answered":
        _add(moved, "talk_seconds", duration_seconds)
    return {k: v for k, v in moved.items() if v}


def _state_after(outcome: str, attempts: int, rules: RetryRules) -> str:
    if outcome == "answered":
        return COMPLETED
    if outcome in rules.retry_on and attempts < rules.max_attempts:
        return PENDING
    return FAILED


def _add(deltas: dict[str, int], column: str, amount: int) -> None:
    deltas[column] = deltas.get(column, 0) + amount
