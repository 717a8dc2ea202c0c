"""The pure lifecycle core, without a database: every transition of the semantics page."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstats.core.counters import Counters
from callstats.core.lifecycle import (
    CallEvent,
    CallState,
    ContactState,
    RetryRules,
    Transition,
    apply,
)
from callstats.stats.response import stats_response
from tests.oracle import (
    BASE_MS,
    OUTCOMES,
    RETRYABLE,
    CampaignOracle,
    Event,
    Rules,
    comparable,
    interleave,
    perturb,
    phone_of,
    simulate_contact,
)

STATES = ("pending", "in_progress", "completed", "failed")
DEFAULT = RetryRules()
T0 = 1_700_000_000_000


def started(call_id: str = "c1", at: int = T0) -> CallEvent:
    """A call.started event."""
    return CallEvent("call.started", call_id, at)


def answered(call_id: str = "c1", at: int = T0 + 1_000) -> CallEvent:
    """A call.answered event."""
    return CallEvent("call.answered", call_id, at)


def ended(outcome: str, call_id: str = "c1", at: int = T0 + 60_000, duration: int = 0) -> CallEvent:
    """A call.ended event."""
    return CallEvent("call.ended", call_id, at, outcome, duration)


def state_deltas_sum_to_zero(transition: Transition) -> bool:
    """A contact moves between states; it is never created or lost by an event."""
    return sum(transition.deltas.get(s, 0) for s in STATES) == 0


def dial(
    contact: ContactState, outcome: str, rules: RetryRules = DEFAULT, call_id: str = "c1"
) -> tuple[ContactState, Transition]:
    """Start and end one call; the contact after it and the ending transition."""
    start = apply(contact, None, started(call_id), rules)
    assert start.effect == "applied"
    end = apply(start.contact, start.call, ended(outcome, call_id), rules)
    assert end.effect == "applied"
    assert state_deltas_sum_to_zero(start) and state_deltas_sum_to_zero(end)
    return end.contact, end


def test_new_contact_is_pending() -> None:
    """Transition 1: an added contact is pending with no attempt."""
    contact = ContactState(contact_id=1)
    assert (contact.state, contact.attempts, contact.live_call_id) == ("pending", 0, None)


@pytest.mark.parametrize("kind", ["call.started", "call.answered"])
def test_call_start_moves_pending_to_in_progress(kind: str) -> None:
    """Transition 2: started (or answered first) takes the contact in progress and counts an attempt."""
    transition = apply(ContactState(1), None, CallEvent(kind, "c1", T0), DEFAULT)
    assert transition.effect == "applied"
    assert transition.contact.state == "in_progress"
    assert (transition.contact.attempts, transition.contact.live_call_id) == (1, "c1")
    assert transition.deltas == {"pending": -1, "in_progress": 1}
    assert transition.started_call and transition.started_at == T0
    assert transition.call is not None and transition.call.status == "live"
    assert transition.call.answered_at == (T0 if kind == "call.answered" else None)


def test_answer_of_live_call_records_time_only() -> None:
    """An answered event on the live call records when, and moves no counter."""
    start = apply(ContactState(1), None, started(), DEFAULT)
    transition = apply(start.contact, start.call, answered(at=T0 + 5), DEFAULT)
    assert transition.effect == "applied"
    assert transition.deltas == {}
    assert transition.contact == start.contact
    assert transition.call is not None and transition.call.answered_at == T0 + 5
    again = apply(transition.contact, transition.call, answered(at=T0 + 9), DEFAULT)
    assert again.effect == "no_change" and again.call == transition.call


def test_second_live_call_is_refused() -> None:
    """Transition 2: a second live call for the same contact is refused."""
    start = apply(ContactState(1), None, started("c1"), DEFAULT)
    second = apply(start.contact, None, started("c2"), DEFAULT)
    assert second.effect == "rejected"
    assert second.contact == start.contact and second.deltas == {}


def test_answered_completes() -> None:
    """Transition 3: answered -> completed, with its talk time and its breakdown entry."""
    start = apply(ContactState(1), None, started(), DEFAULT)
    end = apply(start.contact, start.call, ended("answered", duration=245), DEFAULT)
    assert end.contact.state == "completed" and end.contact.live_call_id is None
    assert end.deltas == {"in_progress": -1, "completed": 1, "bd_answered": 1, "talk_seconds": 245}
    assert end.finalized_at == T0 + 60_000
    assert end.call is not None and (end.call.status, end.call.outcome) == ("ended", "answered")


@pytest.mark.parametrize("outcome", RETRYABLE)
def test_retryable_outcome_with_attempts_left_goes_back_to_pending(outcome: str) -> None:
    """Transition 3: a retryable outcome with attempts left -> pending, and the breakdown counts it."""
    contact, end = dial(ContactState(1), outcome)
    assert contact.state == "pending" and contact.attempts == 1
    assert contact.last_outcome == outcome and contact.live_call_id is None
    assert end.deltas == {"in_progress": -1, "pending": 1, f"bd_{outcome}": 1}
    assert end.finalized_at is None


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 4])
def test_retries_up_to_max_attempts_then_failed(max_attempts: int) -> None:
    """Transition 3: retries go on until max_attempts attempts, then the contact fails."""
    rules = RetryRules(max_attempts=max_attempts, retry_on=frozenset({"busy"}))
    contact = ContactState(1)
    for attempt in range(1, max_attempts + 1):
        contact, end = dial(contact, "busy", rules, call_id=f"c{attempt}")
        assert contact.attempts == attempt
        assert contact.state == ("failed" if attempt == max_attempts else "pending")
    first_call = {"bd_busy": 1} if max_attempts == 1 else {}  # later: the breakdown already says busy
    assert end.deltas == {"in_progress": -1, "failed": 1, **first_call}
    refused = apply(contact, None, started("c-extra"), rules)
    assert refused.effect == "rejected" and refused.contact == contact


def test_breakdown_moves_to_the_latest_outcome() -> None:
    """A retried contact's breakdown entry moves from its previous outcome to the new one."""
    contact, _ = dial(ContactState(1), "busy")
    contact, end = dial(contact, "voicemail", call_id="c2")
    assert end.deltas == {"in_progress": -1, "pending": 1, "bd_busy": -1, "bd_voicemail": 1}


@pytest.mark.parametrize("outcome", RETRYABLE)
def test_empty_retry_on_fails_at_once(outcome: str) -> None:
    """retry_on = []: no outcome is retried, whatever max_attempts says."""
    rules = RetryRules(max_attempts=5, retry_on=frozenset())
    contact, end = dial(ContactState(1), outcome, rules)
    assert contact.state == "failed"
    assert end.deltas == {"in_progress": -1, "failed": 1, f"bd_{outcome}": 1}


def test_outcome_outside_retry_on_fails() -> None:
    """An outcome not in retry_on is final even with attempts left."""
    rules = RetryRules(max_attempts=3, retry_on=frozenset({"busy"}))
    contact, _ = dial(ContactState(1), "no_answer", rules)
    assert contact.state == "failed" and contact.attempts == 1


@pytest.mark.parametrize("outcome", RETRYABLE)
def test_max_attempts_one_means_no_retry(outcome: str) -> None:
    """max_attempts = 1: the first non-answered call fails the contact."""
    contact, _ = dial(ContactState(1), outcome, RetryRules(max_attempts=1))
    assert contact.state == "failed"


def test_ended_first_starts_and_ends_the_call() -> None:
    """An ended event for an unseen call starts it and ends it: a pending contact becomes final at once."""
    transition = apply(ContactState(1), None, ended("answered", at=T0, duration=30), DEFAULT)
    assert transition.effect == "applied" and transition.started_call
    assert transition.contact.state == "completed" and transition.contact.attempts == 1
    assert transition.deltas == {"pending": -1, "completed": 1, "bd_answered": 1, "talk_seconds": 30}
    assert transition.started_at == T0 == transition.finalized_at
    assert state_deltas_sum_to_zero(transition)


def test_ended_first_retry_with_same_outcome_still_counts_the_attempt() -> None:
    """Ended-first retry with the outcome of the previous call: no counter moves, but the attempt counts."""
    contact, _ = dial(ContactState(1), "busy")
    transition = apply(contact, None, ended("busy", call_id="c2"), DEFAULT)
    assert transition.effect == "applied"
    assert transition.deltas == {}
    assert transition.contact.attempts == 2 and transition.contact != contact


@pytest.mark.parametrize("late", [started(at=T0 + 5), answered(), ended("busy", at=T0 + 99_000)])
def test_late_events_of_an_ended_call_change_nothing(late: CallEvent) -> None:
    """Transition 4: events of a call that has ended move nothing (the contact is final).

    (A later call.started of a call whose start came from a call.started changes nothing either.)
    """
    contact, end = dial(ContactState(1), "answered")
    transition = apply(contact, end.call, late, DEFAULT)
    assert transition.effect == "no_change"
    assert (transition.contact, transition.call, dict(transition.deltas)) == (contact, end.call, {})


def test_late_events_do_not_move_a_pending_contact() -> None:
    """A late event of an ended call of a contact waiting for its retry changes nothing."""
    contact, end = dial(ContactState(1), "busy")
    transition = apply(contact, end.call, ended("answered", at=T0 + 99_000, duration=9), DEFAULT)
    assert transition.effect == "no_change" and transition.contact == contact


@pytest.mark.parametrize("final", ["answered", "failed"])
def test_final_contact_cannot_be_dialed_again(final: str) -> None:
    """Transition 4: completed and failed are final; a new call for them is refused."""
    contact, _ = dial(ContactState(1), final, RetryRules(max_attempts=1))
    for event in (started("c9"), answered("c9"), ended("answered", "c9")):
        transition = apply(contact, None, event, DEFAULT)
        assert transition.effect == "rejected" and transition.deltas == {}


def test_call_of_another_contact_is_refused() -> None:
    """An event naming a contact and another contact's call is refused, moving neither."""
    mine = apply(ContactState(1), None, started("c1"), DEFAULT)
    other = ContactState(2)
    for event in (answered("c1"), ended("answered", "c1"), started("c1")):
        transition = apply(other, mine.call, event, DEFAULT)
        assert transition.effect == "rejected"
        assert transition.contact == other and transition.deltas == {}


def test_call_that_is_not_the_live_one_is_refused() -> None:
    """A live call the contact does not consider its live call (inconsistent rows) is refused."""
    start = apply(ContactState(1), None, started("c1"), DEFAULT)
    assert start.call is not None
    stray = start.call._replace(call_id="c0")
    assert apply(start.contact, stray, ended("busy", "c0"), DEFAULT).effect == "rejected"


# -- the core against the oracle, over random streams ------------------------------------------------


class RandomDraws:
    """Simulation choices drawn from Hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return self.data.draw(st.integers(low, high))


class CoreReplay:
    """Events through `lifecycle.apply` alone, counters kept by summing its deltas (as storage does)."""

    def __init__(self, rules: RetryRules, phones: list[str]) -> None:
        self.rules = rules
        self.contacts = {phone: ContactState(n + 1) for n, phone in enumerate(phones)}
        self.calls: dict[str, CallState] = {}
        self.stored: dict[str, Event] = {}
        self.columns: Counter[str] = Counter(total=len(phones), pending=len(phones))
        self.first_call_at: int | None = None
        self.last_final_at: int | None = None

    def deliver(self, event: Event) -> tuple[str, str | None]:
        """What the service would answer for this event."""
        if not event.valid:
            return "rejected", "VALIDATION_ERROR"
        if event.event_id in self.stored:
            return ("duplicate", None) if self.stored[event.event_id] == event else ("rejected", "CONFLICT")
        contact = self.contacts.get(event.contact)
        if contact is None:
            return "rejected", "NOT_FOUND"
        core_event = CallEvent(event.type, event.call_id, event.at_ms, event.outcome, event.duration)
        transition = apply(contact, self.calls.get(event.call_id), core_event, self.rules)
        assert state_deltas_sum_to_zero(transition)
        if transition.effect == "rejected":
            assert transition.deltas == {} and transition.contact == contact
            return "rejected", "CONFLICT"
        self.stored[event.event_id] = event
        self._keep(event, transition)
        return "applied", None

    def _keep(self, event: Event, transition: Transition) -> None:
        self.contacts[event.contact] = transition.contact
        if transition.call is not None:
            self.calls[event.call_id] = transition.call
        self.columns.update(transition.deltas)
        if transition.started_at is not None:
            self.first_call_at = min(self.first_call_at or transition.started_at, transition.started_at)
        if transition.finalized_at is not None:
            self.last_final_at = max(self.last_final_at or 0, transition.finalized_at)

    def counters(self) -> Counters:
        """The counters the deltas add up to."""
        c = self.columns
        return Counters(
            campaign_id="x",
            campaign_name="x",
            total=c["total"],
            pending=c["pending"],
            in_progress=c["in_progress"],
            completed=c["completed"],
            failed=c["failed"],
            talk_seconds=c["talk_seconds"],
            breakdown={o: c["bd_" + o] for o in OUTCOMES},
            first_call_at=self.first_call_at,
            last_final_at=self.last_final_at,
        )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_core_deltas_add_up_to_the_oracle(data: st.DataObject) -> None:
    """Random streams with retries, duplicates and reorderings: summed deltas == the oracle's replay."""
    draws = RandomDraws(data)
    rules = Rules(draws.integer(1, 4), frozenset(o for o in RETRYABLE if draws.integer(0, 3)))
    phones = [phone_of(n) for n in range(draws.integer(1, 5))]
    streams = [
        simulate_contact(draws, f"k{i}", p, rules, BASE_MS + draws.integer(0, 10**6))
        for i, p in enumerate(phones)
    ]
    stream = perturb(draws, interleave(draws, streams), phones, draws.integer(0, 8))
    core = CoreReplay(RetryRules(rules.max_attempts, rules.retry_on), phones)
    oracle = CampaignOracle(rules.max_attempts, rules.retry_on)
    oracle.add_contacts(phones)
    for event in stream:
        assert core.deliver(event) == oracle.deliver(event)
        assert {p: c.state for p, c in core.contacts.items()} == {
            p: c.state for p, c in oracle.contacts.items()
        }
        assert all(c.attempts <= rules.max_attempts for c in core.contacts.values())
    assert comparable(stats_response(core.counters())) == oracle.stats()


def open_by(kind: str, at: int) -> Transition:
    """A fresh contact's call opened by an event of `kind` at `at`."""
    event = {"started": started(at=at), "answered": answered(at=at), "ended": ended("busy", at=at)}[kind]
    return apply(ContactState(1), None, event, DEFAULT)


@pytest.mark.parametrize("kind", ["answered", "ended"])
@pytest.mark.parametrize("offset", [-61_000, -1, 1, 61_000])
def test_the_first_call_started_sets_the_start_whatever_its_time(kind: str, offset: int) -> None:
    """Issue 8: until a call.started arrives, a call starts at its opening event; the first one sets it.

    Earlier or later than the opening event (a skewed clock), live or ended: applied, the contact
    unchanged but for its last_call_at (the start of its latest attempt), no seed counter moved, and
    the transition says where the start was.
    """
    opened = open_by(kind, T0)
    assert opened.call is not None and opened.call.started_at == T0 and not opened.call.start_reported
    moved = apply(opened.contact, opened.call, started(at=T0 + offset), DEFAULT)
    assert moved.effect == "applied" and moved.reason is None
    assert moved.call is not None and moved.call.start_reported
    assert moved.call.started_at == T0 + offset
    assert moved.call._replace(started_at=T0, start_reported=False) == opened.call
    assert opened.contact.last_call_at == T0
    assert moved.contact == opened.contact._replace(last_call_at=T0 + offset) and dict(moved.deltas) == {}
    assert moved.moved_start_from == T0 and moved.started_at == T0 + offset
    assert moved.start_raised == (offset > 0) and not moved.started_call


@pytest.mark.parametrize("offset", [-61_000, -1, 0, 1, 61_000])
def test_a_call_starts_at_its_earliest_call_started(offset: int) -> None:
    """Once a call.started set the start, another one only lowers it (applied), or changes nothing."""
    opened = open_by("started", T0)
    assert opened.call is not None and opened.call.start_reported
    again = apply(opened.contact, opened.call, started(at=T0 + offset), DEFAULT)
    assert again.call is not None and again.call.started_at == min(T0, T0 + offset)
    assert again.effect == ("applied" if offset < 0 else "no_change")
    assert again.moved_start_from == (T0 if offset < 0 else None) and not again.start_raised


def test_an_earlier_start_moves_even_a_final_contacts_call() -> None:
    """The start of an ended call of a completed contact still moves; of the contact, only the start of
    its latest attempt (last_call_at) follows."""
    contact, end = dial(ContactState(1), "answered")
    assert end.call is not None and contact.last_call_at == T0
    moved = apply(contact, end.call, started(at=T0 - 5), DEFAULT)
    assert moved.effect == "applied" and moved.contact == contact._replace(last_call_at=T0 - 5)
    assert moved.call == end.call._replace(started_at=T0 - 5)


def test_last_call_at_is_the_start_of_the_latest_attempt() -> None:
    """A retry's start becomes the contact's last_call_at; a late call.started of the earlier attempt
    moves that call's start and leaves last_call_at at the retry's."""
    rules = RetryRules(max_attempts=2, retry_on=frozenset({"busy"}))
    first = apply(ContactState(1), None, ended("busy", "c1", at=T0), rules)
    assert first.call is not None and first.contact.last_call_at == T0
    retry = apply(first.contact, None, started("c2", at=T0 + 600_000), rules)
    assert retry.contact.last_call_at == T0 + 600_000 and retry.contact.attempts == 2
    late = apply(retry.contact, first.call, started("c1", at=T0 - 30_000), rules)
    assert late.effect == "applied" and late.call is not None and late.call.started_at == T0 - 30_000
    assert late.contact == retry.contact


def test_a_call_started_for_another_contacts_call_is_refused() -> None:
    """The start rule never lets an event move another contact's call."""
    opened = open_by("answered", T0)
    assert opened.call is not None
    assert apply(ContactState(2), opened.call, started(at=T0 - 5), DEFAULT).effect == "rejected"


@given(st.permutations([0, 1, 2]), st.integers(-120_000, 120_000), st.integers(-120_000, 120_000))
@settings(max_examples=300, deadline=None)
def test_every_order_of_a_calls_events_gives_one_start(order: list[int], a: int, e: int) -> None:
    """All six orders of started/answered/ended, with any clock skew: one final call and contact."""
    events = [started(at=T0), answered(at=T0 + a), ended("answered", at=T0 + e, duration=7)]
    contact, call = ContactState(1), None
    for index in order:
        transition = apply(contact, call, events[index], DEFAULT)
        assert transition.effect in ("applied", "no_change")
        contact, call = transition.contact, transition.call
    assert call is not None and (call.started_at, call.start_reported, call.ended_at) == (T0, True, T0 + e)
    assert contact.state == "completed" and contact.finalized_at == T0 + e
