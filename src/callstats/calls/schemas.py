"""Request and response shapes of recordCallEvents."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from callstats.bodies import MAX_BIGINT, StoredText, StrictInt, parse_json, storable_text, validation_message
from callstats.clock import Clock, epoch_ms, now_ms
from callstats.config import Settings
from callstats.core.lifecycle import CallEvent
from callstats.errors import ValidationFailed
from callstats.ids import canonical_uuid
from callstats.stats.response import iso_utc

MAX_EVENTS_PER_REQUEST = 1_000
MAX_RAW_OUTCOME_CHARS = 160  # calls.raw_outcome's width: a provider, ':' and a raw value of up to 128


@dataclass(frozen=True, slots=True)
class EventRules:
    """What ingestion accepts beyond an event's shape, from the settings (built once per app).

    `default_region`: ISO 3166 alpha-2 region of phones written without +country. `earliest_ms` and
    `max_ahead_ms`: an event's occurred_at must lie in [earliest_ms, server clock + max_ahead_ms],
    epoch milliseconds. `clock`: the server's clock (the window's, and the time events are received).
    """

    default_region: str = "US"
    earliest_ms: int = 946_684_800_000  # 2000-01-01T00:00:00Z
    max_ahead_ms: int = 86_400_000  # one day
    clock: Clock = now_ms

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = now_ms) -> EventRules:
        """The rules CALLSTATS_DEFAULT_REGION, CALLSTATS_EVENTS_EARLIEST and ..._MAX_AHEAD_SECONDS set,
        on the server's `clock`."""
        earliest = settings.events_earliest
        return cls(
            default_region=settings.default_region,
            earliest_ms=epoch_ms(earliest),
            max_ahead_ms=settings.events_max_ahead_seconds * 1000,
            clock=clock,
        )

    def window(self, now_ms: int) -> tuple[int, int]:
        """The first and last accepted occurred_at (epoch ms) when the server's clock says `now_ms`."""
        return self.earliest_ms, now_ms + self.max_ahead_ms

    def window_text(self) -> str:
        """The window in words, for a rejection's reason."""
        return f"from {iso_utc(self.earliest_ms)} to {self.max_ahead_ms // 1000} s past the server's clock"


_DEFAULT_RULES = EventRules()

EventType = Literal["call.started", "call.answered", "call.ended"]
Outcome = Literal["answered", "busy", "no_answer", "failed", "voicemail"]
# StoredText with its length checked first (a Field bound on an optional field would be checked after
# the NUL check, and say "items" instead of "characters")
RawOutcome = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_RAW_OUTCOME_CHARS), AfterValidator(storable_text)
]


class CallEventIn(BaseModel):
    """One call event as a carrier or dialer sends it.

    `raw_outcome` (call.ended only, optional) is the carrier's own word for how the call ended, as
    `<provider>:<raw value>` (`twilio:no-answer`); it is kept on the call and counted by
    getCampaignStats?include=raw_outcomes, and changes no other number.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    event_id: StoredText = Field(min_length=1, max_length=128)
    campaign_id: StoredText = Field(json_schema_extra={"format": "uuid"})
    contact_id: StrictInt | None = Field(default=None, ge=1, le=MAX_BIGINT)
    phone: StoredText | None = None
    call_id: StoredText = Field(min_length=1, max_length=128)
    type: EventType
    outcome: Outcome | None = None
    raw_outcome: RawOutcome | None = None
    duration_seconds: StrictInt = Field(default=0, ge=0, le=86_400 * 7)
    occurred_at: datetime

    @field_validator("campaign_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return canonical_uuid(value)

    @model_validator(mode="after")
    def _consistent(self) -> CallEventIn:
        if self.contact_id is None and not self.phone:
            raise ValueError("one of contact_id or phone is required")
        if self.type == "call.ended" and self.outcome is None:
            raise ValueError("outcome is required for call.ended")
        if self.type != "call.ended" and self.outcome is not None:
            raise ValueError(f"outcome is only allowed on call.ended, not {self.type}")
        if self.raw_outcome is not None and self.type != "call.ended":
            raise ValueError(f"raw_outcome is only allowed on call.ended, not {self.type}")
        # Filled here, where the model is built, rather than on first read: the cached property's
        # first read (its lock and its checks) cost 2.5 us per event, 5 % of the write path.
        self.__dict__["occurred_ms"] = epoch_ms(self.occurred_at)
        return self

    @cached_property
    def occurred_ms(self) -> int:
        """When it happened, in epoch milliseconds (a time without offset is UTC); computed once, as the
        window check, the fingerprint and the lifecycle each need it (the validator fills it)."""
        return epoch_ms(self.occurred_at)

    def body_hash(self) -> str:
        """A fingerprint of what the event says, to tell a redelivery from a reused id.

        The sorted JSON of every field (`model_dump(mode="json")`'s values, written out by hand: a
        dump per event cost as much as its validation), with `occurred_at` in epoch milliseconds.
        Stored hashes depend on these exact bytes: `raw_outcome`, added later, is in it only when
        set, so the hashes stored before it stay valid.
        """
        canonical = {
            "call_id": self.call_id,
            "campaign_id": self.campaign_id,
            "contact_id": self.contact_id,
            "duration_seconds": self.duration_seconds,
            "event_id": self.event_id,
            "occurred_at": self.occurred_ms,
            "outcome": self.outcome,
            "phone": self.phone,
            "type": self.type,
        }
        if self.raw_outcome is not None:
            canonical["raw_outcome"] = self.raw_outcome
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def lifecycle_event(self) -> CallEvent:
        """The event as the lifecycle core sees it."""
        return CallEvent(
            type=self.type,
            call_id=self.call_id,
            occurred_at=self.occurred_ms,
            outcome=self.outcome,
            duration_seconds=self.duration_seconds,
            raw_outcome=self.raw_outcome,
        )


@dataclass(slots=True)
class EventResult:
    """What became of one event: applied, duplicate or rejected (with why).

    Not frozen: one is built per event, and a frozen dataclass's __init__ costs twice as much.
    """

    index: int
    event_id: str | None
    status: Literal["applied", "duplicate", "rejected"]
    error: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RecordEventsResult:
    """Counts and per-event results of one recordCallEvents request (orjson writes it as is)."""

    received: int
    applied: int
    duplicate: int
    rejected: int
    results: list[EventResult]

    @classmethod
    def tallied(cls, results: list[EventResult]) -> RecordEventsResult:
        """A request's answer from its events' results, one per event received, in order."""
        applied = sum(1 for r in results if r.status == "applied")
        duplicate = sum(1 for r in results if r.status == "duplicate")
        return cls(len(results), applied, duplicate, len(results) - applied - duplicate, results)


class RecordCallEventsBody(BaseModel):
    """recordCallEvents' body as OpenAPI shows it. event_items and parse_event check it: the list as a
    whole (a 400 when unusable), then each event with CallEventIn on its own (a bad event is rejected
    in the 200, its neighbours are not)."""

    events: list[CallEventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class RecordEventsEnvelope(BaseModel):
    """recordCallEvents' answer in the seed's envelope."""

    success: bool = True
    data: RecordEventsResult


def event_items(body: bytes) -> list[Any]:
    """The raw items of a recordCallEvents body; a 400 when the body as a whole is unusable.

    Parsed with `bodies.parse_json` (nesting limit), so a hostile body is a 400 VALIDATION_ERROR.
    """
    parsed: Any = parse_json(body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("events"), list):
        raise ValidationFailed('body: expected {"events": [...]}')
    items: list[Any] = parsed["events"]
    if not 1 <= len(items) <= MAX_EVENTS_PER_REQUEST:
        raise ValidationFailed(
            f"events: between 1 and {MAX_EVENTS_PER_REQUEST} per request, got {len(items)}"
        )
    return items


def parse_event(
    item: Any, rules: EventRules | None = None, window: tuple[int, int] | None = None
) -> CallEventIn | str:
    """A validated event, or the sentence saying what is wrong with it.

    `window` is `rules.window(now)` (default rules and the clock now when not given; a batch computes
    it once): the first and last accepted occurred_at in epoch milliseconds. Outside it, the event
    is refused; its neighbours are not.
    """
    rules = rules or _DEFAULT_RULES
    window = window or rules.window(rules.clock())
    try:
        event = CallEventIn.model_validate(item)
    except ValidationError as exc:
        return validation_message(exc)
    if not window[0] <= event.occurred_ms <= window[1]:
        sent = event.occurred_at.isoformat()
        return f"occurred_at: {sent} is outside the accepted window ({rules.window_text()})"
    return event


def raw_event_id(item: Any) -> str | None:
    """The event_id of an item that may not be a valid event."""
    value = item.get("event_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None
