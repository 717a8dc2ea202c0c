"""An independent model of the semantics page, and a simulated dialer that feeds it.

`CampaignOracle` replays a stream of call events from scratch, written only from
the semantics page (docs/semantics.md): it never imports the lifecycle core, the
counters or reconcile, so the code's numbers are checked against arithmetic that
is not the code's own. Two points the page leaves open are fixed here as the API
behaves: a rejected event is not recorded (its id stays free for a later
redelivery), and a call starts at the time of the first of its events that is
accepted (an `ended` arriving first starts and ends the call then).

`simulate` writes random but realistic event streams (retries, live calls,
reorderings within a call) and `perturb` adds redeliveries, reused ids,
second live calls and other events the API must refuse.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

from hypothesis import strategies as st

OUTCOMES = ("answered", "busy", "no_answer", "failed", "voicemail")
RETRYABLE = ("busy", "no_answer", "failed", "voicemail")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_MS = int((datetime(2024, 1, 16, 10, 0, tzinfo=UTC) - EPOCH) / timedelta(milliseconds=1))


def iso(epoch_ms: int) -> str:
    """The ISO 8601 UTC text of an epoch-millisecond time (computed exactly, without floats)."""
    moment = EPOCH + timedelta(milliseconds=epoch_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def epoch_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 text ending in Z (exact)."""
    assert text.endswith("Z"), text
    moment = datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def half_up(value: Fraction, places: int) -> Fraction:
    """`value` (not negative) rounded half-up to `places` decimals, exactly."""
    scale = 10**places
    return Fraction(int(value * scale + Fraction(1, 2)), scale)


@dataclass(frozen=True)
class Event:
    """One call event as delivered; `contact` is the E.164 phone the body's `phone` names."""

    event_id: str
    contact: str
    call_id: str
    type: str
    at_ms: int
    outcome: str | None = None
    duration: int = 0
    phone_text: str = ""
    valid: bool = True

    def body(self, campaign_id: str, prefix: str) -> dict[str, Any]:
        """The JSON body; ids are prefixed so that examples sharing a database never collide."""
        body: dict[str, Any] = {
            "event_id": f"{prefix}{self.event_id}",
            "campaign_id": campaign_id,
            "phone": self.phone_text or self.contact,
            "call_id": f"{prefix}{self.call_id}",
            "type": self.type,
            "occurred_at": iso(self.at_ms),
        }
        if self.type == "call.ended" and self.valid:
            body["outcome"] = self.outcome
        if self.duration:
            body["duration_seconds"] = self.duration
        return body


@dataclass
class _Call:
    contact: str
    started_at: int
    start_reported: bool = False  # started_at is the earliest call.started's time, not the opening event's
    ended: bool = False
    outcome: str | None = None
    duration: int = 0


@dataclass
class _Contact:
    state: str = "pending"
    attempts: int = 0
    live_call: str | None = None
    last_outcome: str | None = None
    final_at: int | None = None


@dataclass
class CampaignOracle:
    """A campaign's contacts and calls, replayed event by event per the semantics page."""

    max_attempts: int
    retry_on: frozenset[str]
    contacts: dict[str, _Contact] = field(default_factory=dict)
    calls: dict[str, _Call] = field(default_factory=dict)
    stored: dict[str, Event] = field(default_factory=dict)

    def add_contacts(self, phones: Iterable[str]) -> tuple[int, int]:
        """Add E.164 phones; (accepted, duplicate) as addContacts reports them."""
        accepted = duplicate = 0
        for phone in phones:
            if phone in self.contacts:
                duplicate += 1
            else:
                self.contacts[phone] = _Contact()
                accepted += 1
        return accepted, duplicate

    def deliver(self, event: Event) -> tuple[str, str | None]:
        """Apply one delivered event: (status, error code) as recordCallEvents reports it."""
        if not event.valid:
            return "rejected", "VALIDATION_ERROR"
        known = self.stored.get(event.event_id)
        if known is not None:
            return ("duplicate", None) if known == event else ("rejected", "CONFLICT")
        contact = self.contacts.get(event.contact)
        if contact is None:
            return "rejected", "NOT_FOUND"
        call = self.calls.get(event.call_id)
        if call is None:
            if contact.state != "pending":  # a second live call, or a final contact dialed again
                return "rejected", "CONFLICT"
            assert contact.attempts < self.max_attempts, "a pending contact always has an attempt left"
            call = self.calls[event.call_id] = _Call(event.contact, started_at=event.at_ms)
            call.start_reported = event.type == "call.started"
            contact.state, contact.live_call = "in_progress", event.call_id
            contact.attempts += 1
        elif call.contact != event.contact:
            return "rejected", "CONFLICT"
        elif event.type == "call.started":  # a call starts at its earliest call.started, whenever it arrives
            reported = call.started_at if call.start_reported else event.at_ms
            call.started_at, call.start_reported = min(reported, event.at_ms), True
        if event.type == "call.ended" and not call.ended:
            self._finish(contact, call, event)
        self.stored[event.event_id] = event
        return "applied", None

    def _finish(self, contact: _Contact, call: _Call, event: Event) -> None:
        assert event.outcome is not None
        call.ended, call.outcome, call.duration = True, event.outcome, event.duration
        contact.live_call, contact.last_outcome = None, event.outcome
        if event.outcome == "answered":
            contact.state = "completed"
        elif event.outcome in self.retry_on and contact.attempts < self.max_attempts:
            contact.state = "pending"
        else:
            contact.state = "failed"
        if contact.state in ("completed", "failed"):
            contact.final_at = event.at_ms

    def count(self, state: str) -> int:
        """Contacts in `state`."""
        return sum(1 for c in self.contacts.values() if c.state == state)

    def finished_contacts(self) -> int:
        """Contacts with at least one finished call."""
        return sum(1 for c in self.contacts.values() if c.last_outcome is not None)

    def first_start(self) -> int | None:
        """When the campaign's first call started."""
        return min((c.started_at for c in self.calls.values()), default=None)

    def stats(self) -> dict[str, Any]:
        """The numbers of getCampaignStats' `data` (ids, name and times as epoch ms)."""
        completed, failed = self.count("completed"), self.count("failed")
        pending, in_progress = self.count("pending"), self.count("in_progress")
        answered = [c for c in self.calls.values() if c.ended and c.outcome == "answered"]
        talk = sum(c.duration for c in answered)
        breakdown = dict.fromkeys(OUTCOMES, 0)
        for contact in self.contacts.values():
            if contact.last_outcome is not None:
                breakdown[contact.last_outcome] += 1
        finals = [c.final_at for c in self.contacts.values() if c.final_at is not None]
        done = bool(self.contacts) and pending == 0 and in_progress == 0
        rate = half_up(Fraction(100 * completed, completed + failed), 2) if completed + failed else 0
        return {
            "total_contacts": len(self.contacts),
            "calls_completed": completed,
            "calls_failed": failed,
            "calls_in_progress": in_progress,
            "calls_pending": pending,
            "success_rate": float(rate),
            "average_call_duration": int(half_up(Fraction(talk, len(answered)), 0)) if answered else 0,
            "total_call_duration": talk,
            "call_status_breakdown": breakdown,
            "started_at": self.first_start(),
            "completed_at": max(finals) if done else None,
        }


def comparable(data: Mapping[str, Any]) -> dict[str, Any]:
    """An API `data` object in the oracle's terms: no ids or name, times as epoch ms."""
    numbers = {k: v for k, v in data.items() if k not in ("campaign_id", "campaign_name")}
    for name in ("started_at", "completed_at"):
        if numbers.get(name) is not None:
            numbers[name] = epoch_ms(numbers[name])
    return numbers


# -- the simulated dialer ------------------------------------------------------------------------


class Chooser(Protocol):
    """Where the simulation's random choices come from (Hypothesis data or a seeded Random)."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        ...


class DrawChooser:
    """The simulation's choices, drawn from Hypothesis (so failures shrink)."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return self.data.draw(st.integers(low, high))


def pick(chooser: Chooser, options: Sequence[Any]) -> Any:
    """One of `options`."""
    return options[chooser.integer(0, len(options) - 1)]


def chance(chooser: Chooser, one_in: int) -> bool:
    """True about once in `one_in` draws."""
    return chooser.integer(1, one_in) == 1


@dataclass(frozen=True)
class Rules:
    """A campaign's retry settings as the simulation sees them."""

    max_attempts: int
    retry_on: frozenset[str]


def phone_of(number: int) -> str:
    """The E.164 phone of contact `number` (0..999)."""
    return f"+1415555{number:04d}"


def written_forms(number: int) -> list[str]:
    """Ways a client may write contact `number`'s phone, all meaning the same E.164 number."""
    n = f"{number:04d}"
    return [phone_of(number), f"(415) 555-{n}", f"415-555-{n}", f"+1 415 555 {n}"]


def simulate_contact(chooser: Chooser, tag: str, phone: str, rules: Rules, start_ms: int) -> list[Event]:
    """One contact's events as a dialer and carrier would send them, in delivery order."""
    events: list[Event] = []
    at = start_ms
    outcome: str | None = None
    for attempt in itertools.count(1):
        if chance(chooser, 8):  # the dialer has not (re)dialed yet: the contact stays pending
            break
        call_id = f"{tag}-call{attempt}"
        if chance(chooser, 8):
            outcome = None  # the call is still live
        elif outcome is None or chance(chooser, 2):  # else a busy line often stays busy
            outcome = pick(chooser, OUTCOMES)
        call: list[Event] = [Event(f"{call_id}-s", phone, call_id, "call.started", at)]
        if outcome in ("answered", "voicemail") and chooser.integer(0, 1):
            at += chooser.integer(1, 20_000)
            call.append(Event(f"{call_id}-a", phone, call_id, "call.answered", at))
        if outcome is not None:
            at += chooser.integer(1, 600_000)
            duration = chooser.integer(1, 900) if outcome in ("answered", "voicemail") else 0
            call.append(Event(f"{call_id}-e", phone, call_id, "call.ended", at, outcome, duration))
        events += reorder_call(chooser, call)
        retry_due = outcome in rules.retry_on and attempt < rules.max_attempts
        if outcome is None or not retry_due:
            break
        at += chooser.integer(1, 3_600_000)
    return events


def reorder_call(chooser: Chooser, call: list[Event]) -> list[Event]:
    """The events of one call, usually in order, sometimes in any order (late webhooks)."""
    if len(call) < 2 or chance(chooser, 2):
        return call
    orders = list(itertools.permutations(call))
    return list(pick(chooser, orders))


def interleave(chooser: Chooser, streams: list[list[Event]]) -> list[Event]:
    """One stream from several, each one's order kept."""
    queues = [list(s) for s in streams if s]
    merged: list[Event] = []
    while queues:
        index = chooser.integer(0, len(queues) - 1)
        merged.append(queues[index].pop(0))
        if not queues[index]:
            queues.pop(index)
    return merged


def with_phone_forms(chooser: Chooser, events: list[Event], forms: dict[str, list[str]]) -> list[Event]:
    """Each contact's events write its phone one way (chosen per contact)."""
    chosen = {phone: pick(chooser, options) for phone, options in forms.items()}
    return [replace(e, phone_text=chosen.get(e.contact, e.contact)) for e in events]


def perturb(chooser: Chooser, events: list[Event], phones: list[str], count: int) -> list[Event]:
    """Add `count` redeliveries, reused ids, second live calls and refused events."""
    stream = list(events)
    for n in range(count):
        kind = pick(chooser, PERTURBATIONS) if stream else _unknown_contact
        stream = kind(chooser, stream, phones, n)
    return stream


def _later(chooser: Chooser, stream: list[Event], after: int) -> int:
    return chooser.integer(after + 1, len(stream))


def _redeliver(chooser: Chooser, stream: list[Event], _phones: list[str], _n: int) -> list[Event]:
    i = chooser.integer(0, len(stream) - 1)
    j = _later(chooser, stream, i)
    return [*stream[:j], stream[i], *stream[j:]]


def _reuse_id(chooser: Chooser, stream: list[Event], _phones: list[str], _n: int) -> list[Event]:
    i = chooser.integer(0, len(stream) - 1)
    original = stream[i]
    if original.type == "call.ended" and chooser.integer(0, 1):
        other = pick(chooser, [o for o in OUTCOMES if o != original.outcome])
        changed = replace(original, outcome=other, duration=original.duration + 1)
    else:
        changed = replace(original, at_ms=original.at_ms + chooser.integer(1, 5_000))
    j = _later(chooser, stream, i)
    return [*stream[:j], changed, *stream[j:]]


def _second_live_call(chooser: Chooser, stream: list[Event], _phones: list[str], n: int) -> list[Event]:
    starts = [i for i, e in enumerate(stream) if e.type == "call.started"]
    if not starts:
        return stream
    i = pick(chooser, starts)
    first = stream[i]
    extra = replace(first, event_id=f"x{n}-s", call_id=f"x{n}-call", at_ms=first.at_ms + 1)
    return [*stream[: i + 1], extra, *stream[i + 1 :]]


def _other_contacts_call(chooser: Chooser, stream: list[Event], phones: list[str], n: int) -> list[Event]:
    i = chooser.integer(0, len(stream) - 1)
    owner = stream[i]
    others = [p for p in phones if p != owner.contact]
    if not others:
        return stream
    kind = pick(chooser, ["call.answered", "call.ended"])
    stranger = Event(
        f"x{n}-o",
        pick(chooser, others),
        owner.call_id,
        kind,
        owner.at_ms + 1,
        "busy" if kind == "call.ended" else None,
    )
    j = _later(chooser, stream, i)
    return [*stream[:j], stranger, *stream[j:]]


def _dial_again(chooser: Chooser, stream: list[Event], _phones: list[str], n: int) -> list[Event]:
    i = chooser.integer(0, len(stream) - 1)
    last = max(j for j, e in enumerate(stream) if e.contact == stream[i].contact)
    again = Event(f"x{n}-r", stream[i].contact, f"x{n}-again", "call.started", stream[last].at_ms + 1)
    j = _later(chooser, stream, last)
    return [*stream[:j], replace(again, phone_text=stream[i].phone_text), *stream[j:]]


def _swap_across_calls(chooser: Chooser, stream: list[Event], _phones: list[str], _n: int) -> list[Event]:
    """A late webhook across calls: a retry's event overtakes the previous call's."""
    pairs = [
        (i, j)
        for i, first in enumerate(stream)
        for j in range(i + 1, len(stream))
        if stream[j].contact == first.contact and stream[j].call_id != first.call_id
    ]
    if not pairs:
        return stream
    i, j = pick(chooser, pairs)
    swapped = list(stream)
    swapped[i], swapped[j] = stream[j], stream[i]
    return swapped


def _near(stream: list[Event], j: int) -> int:
    """A time beside position j of the stream, so that later perturbations built on it stay in its window."""
    return stream[max(j - 1, 0)].at_ms if stream else BASE_MS


def _unknown_contact(chooser: Chooser, stream: list[Event], _phones: list[str], n: int) -> list[Event]:
    j = chooser.integer(0, len(stream))
    stranger = Event(f"x{n}-u", phone_of(999), f"x{n}-nobody", "call.started", _near(stream, j))
    return [*stream[:j], stranger, *stream[j:]]


def _malformed(chooser: Chooser, stream: list[Event], phones: list[str], n: int) -> list[Event]:
    j = chooser.integer(0, len(stream))
    at = _near(stream, j)
    bad = Event(f"x{n}-m", pick(chooser, phones), f"x{n}-bad", "call.ended", at, "busy", valid=False)
    return [*stream[:j], bad, *stream[j:]]


PERTURBATIONS = (
    _redeliver,
    _redeliver,
    _reuse_id,
    _second_live_call,
    _swap_across_calls,
    _other_contacts_call,
    _dial_again,
    _unknown_contact,
    _malformed,
)


def batches(chooser: Chooser, stream: list[Event], largest: int) -> list[list[Event]]:
    """The stream cut into requests of 1..`largest` events."""
    cut: list[list[Event]] = []
    start = 0
    while start < len(stream):
        size = chooser.integer(1, largest)
        cut.append(stream[start : start + size])
        start += size
    return cut


class SeededChoices:
    """Simulation choices from a seeded Random (reproducible)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return self.rng.randint(low, high)
