"""The pure core of the simulated dialer: which call events are due at a given simulated time.

No I/O and no wall clock. Time is simulated seconds since the dialer started;
the async loop in `dialer.py` maps real elapsed time onto it. Contacts are
tracked with the same lifecycle core the server uses, so the simulation always
knows which contacts the server holds as pending (and so dials them again).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from callstats.core import lifecycle
from callstats.core.lifecycle import PENDING, CallEvent, CallState, ContactState, RetryRules

DEFAULT_OUTCOME_MIX: Mapping[str, float] = MappingProxyType(
    {"answered": 0.55, "busy": 0.10, "no_answer": 0.15, "voicemail": 0.12, "failed": 0.08}
)


@dataclass(frozen=True)
class DialerConfig:
    """How the simulated dialer behaves; every time is in simulated seconds."""

    lines: int = 30
    outcome_mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_OUTCOME_MIX)
    talk_median: float = 150.0
    talk_sigma: float = 0.7
    talk_range: tuple[int, int] = (20, 600)
    ring_answered: tuple[float, float] = (4.0, 20.0)
    ring_busy: tuple[float, float] = (1.0, 4.0)
    ring_no_answer: tuple[float, float] = (25.0, 45.0)
    ring_voicemail: tuple[float, float] = (15.0, 30.0)
    voicemail_message: tuple[int, int] = (15, 45)
    ring_failed: tuple[float, float] = (0.5, 6.0)
    wrap_up: tuple[float, float] = (1.0, 3.0)
    retry_delay: tuple[float, float] = (300.0, 900.0)
    ramp_up: float = 20.0


@dataclass(frozen=True)
class SimEvent:
    """One call event of the simulation, due at `at` simulated seconds."""

    at: float
    type: str
    contact: int
    call_id: str
    outcome: str | None = None
    duration_seconds: int = 0


@dataclass(frozen=True)
class _Plan:
    """One attempt drawn in advance: when it is answered and ends, and how."""

    outcome: str
    answered_after: float | None
    ended_after: float
    duration_seconds: int


class DialerSimulation:
    """A dialer with a fixed number of lines working through a campaign's contacts, retries included."""

    def __init__(
        self,
        contacts: Sequence[int],
        rules: RetryRules,
        config: DialerConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config or DialerConfig()
        self.rules = rules
        self._rng = random.Random(seed)
        self._contacts = {c: ContactState(contact_id=c) for c in contacts}
        self._live: dict[int, CallState] = {}
        self._events: list[tuple[float, int, SimEvent]] = []
        self._ready: list[tuple[float, int, int]] = [(0.0, i, c) for i, c in enumerate(contacts)]
        spacing = self.config.ramp_up / max(self.config.lines, 1)
        self._lines: list[float] = [i * spacing for i in range(self.config.lines)]
        self._seq = len(contacts)

    @property
    def finished(self) -> bool:
        """Whether every contact is final and no call is live."""
        return not self._events and not self._ready

    def states(self) -> Counter[str]:
        """How many contacts are in each lifecycle state."""
        return Counter(contact.state for contact in self._contacts.values())

    def advance(self, now: float) -> list[SimEvent]:
        """Every event due up to simulated time `now`, in time order."""
        due: list[SimEvent] = []
        while True:
            event_at = self._events[0][0] if self._events else math.inf
            dial_at = max(self._ready[0][0], self._lines[0]) if self._ready else math.inf
            if min(event_at, dial_at) > now:
                return due
            if event_at <= dial_at:
                due.append(self._emit(heapq.heappop(self._events)[2]))
            else:
                self._dial(dial_at)

    def _push(self, event: SimEvent) -> None:
        self._seq += 1
        heapq.heappush(self._events, (event.at, self._seq, event))

    def _dial(self, at: float) -> None:
        heapq.heappop(self._lines)
        _, _, contact = heapq.heappop(self._ready)
        call_id = f"demo-{contact}-{self._contacts[contact].attempts + 1}"
        plan = self._plan()
        self._push(SimEvent(at, "call.started", contact, call_id))
        if plan.answered_after is not None:
            self._push(SimEvent(at + plan.answered_after, "call.answered", contact, call_id))
        ended_at = at + plan.ended_after
        self._push(SimEvent(ended_at, "call.ended", contact, call_id, plan.outcome, plan.duration_seconds))
        heapq.heappush(self._lines, ended_at + self._rng.uniform(*self.config.wrap_up))

    def _emit(self, event: SimEvent) -> SimEvent:
        """Move the contact as the server will, and queue it again when a retry is due."""
        contact = self._contacts[event.contact]
        call_event = CallEvent(
            event.type, event.call_id, round(event.at * 1000), event.outcome, event.duration_seconds
        )
        transition = lifecycle.apply(contact, self._live.get(event.contact), call_event, self.rules)
        if transition.effect != "applied":
            raise AssertionError(f"simulated event not applicable: {transition.reason}")
        self._contacts[event.contact] = transition.contact
        if event.type != "call.ended":
            assert transition.call is not None
            self._live[event.contact] = transition.call
            return event
        del self._live[event.contact]
        if transition.contact.state == PENDING:
            self._seq += 1
            ready_at = event.at + self._rng.uniform(*self.config.retry_delay)
            heapq.heappush(self._ready, (ready_at, self._seq, event.contact))
        return event

    def _plan(self) -> _Plan:
        """Draw one attempt's outcome, ring time and duration."""
        config = self.config
        outcome = self._rng.choices(list(config.outcome_mix), weights=list(config.outcome_mix.values()))[0]
        if outcome == "answered":
            ring = self._rng.uniform(*config.ring_answered)
            talk = self._talk_seconds()
            return _Plan(outcome, ring, ring + talk, talk)
        if outcome == "voicemail":
            message = self._rng.randint(*config.voicemail_message)
            return _Plan(outcome, None, self._rng.uniform(*config.ring_voicemail) + message, message)
        ring_range = {"busy": config.ring_busy, "no_answer": config.ring_no_answer}
        return _Plan(outcome, None, self._rng.uniform(*ring_range.get(outcome, config.ring_failed)), 0)

    def _talk_seconds(self) -> int:
        """A talk time: lognormal around the median, clipped to the configured range."""
        low, high = self.config.talk_range
        drawn = self._rng.lognormvariate(math.log(self.config.talk_median), self.config.talk_sigma)
        return min(high, max(low, round(drawn)))
