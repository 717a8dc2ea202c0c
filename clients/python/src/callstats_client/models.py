"""The objects the client returns: one frozen dataclass per shape of the API, attributes named as the
API's fields (docs/api.md), built from the answer's `data` by `from_json`.

Times are ISO 8601 UTC strings as the server sends them; durations are whole seconds; `success_rate`
is a percentage, 0-100. A field the server adds later is ignored until the client knows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

T = TypeVar("T")
Json = dict[str, Any]
CampaignStatus = Literal["not_started", "running", "stalled", "completed"]
Outcome = Literal["answered", "busy", "no_answer", "failed", "voicemail"]


def _fields(data: Json, names: Iterable[str]) -> dict[str, Any]:
    """The named fields of an API object (None for one it does not carry)."""
    return {name: data.get(name) for name in names}


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paginated list: its `items`, and `next_cursor` (None on the last page)."""

    items: list[T]
    next_cursor: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign (createCampaign, getCampaign, getCampaigns)."""

    campaign_id: str
    name: str
    max_attempts: int
    retry_on: list[str]
    default_region: str
    total_contacts: int
    created_at: str
    stall_after_minutes: int
    status: CampaignStatus
    last_event_at: str | None

    @classmethod
    def from_json(cls, data: Json) -> Campaign:
        """From the API's campaign object."""
        return cls(
            campaign_id=data["campaign_id"],
            name=data["name"],
            max_attempts=data["max_attempts"],
            retry_on=list(data["retry_on"]),
            default_region=data["default_region"],
            total_contacts=data["total_contacts"],
            created_at=data["created_at"],
            stall_after_minutes=data["stall_after_minutes"],
            status=data["status"],
            last_event_at=data.get("last_event_at"),
        )


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    """getCampaignSummaries' figures of one campaign (the same definitions as getCampaignStats)."""

    campaign_id: str
    total_contacts: int
    calls_completed: int
    calls_failed: int
    calls_in_progress: int
    calls_pending: int
    success_rate: float

    @classmethod
    def from_json(cls, data: Json) -> CampaignSummary:
        """From one item of getCampaignSummaries' `data`."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class DeletedCampaign:
    """deleteCampaign's answer."""

    campaign_id: str
    deleted: bool

    @classmethod
    def from_json(cls, data: Json) -> DeletedCampaign:
        """From deleteCampaign's `data`."""
        return cls(campaign_id=data["campaign_id"], deleted=bool(data["deleted"]))


@dataclass(frozen=True, slots=True)
class ForgottenContact:
    """forgetContact's answer: when the contact was (first) erased, and callbacks deleted now."""

    campaign_id: str
    contact_id: int
    erased_at: str
    callbacks_deleted: int

    @classmethod
    def from_json(cls, data: Json) -> ForgottenContact:
        """From forgetContact's `data`."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A row addContacts refused: `row` 1-based over every row this call sent, `phone` as sent."""

    row: int
    phone: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class DuplicateRow:
    """A row not added because its identity `phone` was there already: `earlier_row` is the row of this
    call that added it (None when the campaign held it before)."""

    row: int
    phone: str
    earlier_row: int | None


@dataclass(frozen=True, slots=True)
class AddContactsResult:
    """What addContacts did, summed over every request of one `add_contacts` call (rows renumbered
    from 1 across the requests); `requests` is how many requests it took."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    invalid: int = 0
    errors: list[InvalidRow] = field(default_factory=list)
    duplicates: list[DuplicateRow] = field(default_factory=list)
    requests: int = 0

    def plus(self, data: Json, row_offset: int) -> AddContactsResult:
        """This result with one more request's `data` added, its rows moved past `row_offset`."""
        errors = [InvalidRow(e["row"] + row_offset, e.get("phone"), e["reason"]) for e in data["errors"]]
        duplicates = [
            DuplicateRow(
                d["row"] + row_offset,
                d["phone"],
                None if d.get("earlier_row") is None else d["earlier_row"] + row_offset,
            )
            for d in data["duplicates"]
        ]
        return AddContactsResult(
            received=self.received + data["received"],
            accepted=self.accepted + data["accepted"],
            duplicate=self.duplicate + data["duplicate"],
            invalid=self.invalid + data["invalid"],
            errors=[*self.errors, *errors],
            duplicates=[*self.duplicates, *duplicates],
            requests=self.requests + 1,
        )


@dataclass(frozen=True, slots=True)
class EventResult:
    """One event's result: `status` applied, duplicate or rejected (then `error` and `reason`); `index`
    is its position in the events given to `record_events`."""

    index: int
    event_id: str | None
    status: Literal["applied", "duplicate", "rejected"]
    error: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class RecordEventsResult:
    """recordCallEvents' answer summed over every request of one `record_events` call."""

    received: int = 0
    applied: int = 0
    duplicate: int = 0
    rejected: int = 0
    results: list[EventResult] = field(default_factory=list)
    requests: int = 0

    def plus(self, data: Json, index_offset: int) -> RecordEventsResult:
        """This result with one more request's `data` added, its indexes moved past `index_offset`."""
        results = [
            EventResult(
                r["index"] + index_offset, r.get("event_id"), r["status"], r.get("error"), r.get("reason")
            )
            for r in data["results"]
        ]
        return RecordEventsResult(
            received=self.received + data["received"],
            applied=self.applied + data["applied"],
            duplicate=self.duplicate + data["duplicate"],
            rejected=self.rejected + data["rejected"],
            results=[*self.results, *results],
            requests=self.requests + 1,
        )


@dataclass(frozen=True, slots=True)
class StatusBreakdown:
    """Counts by outcome (call_status_breakdown: contacts by latest outcome; attempts: calls)."""

    answered: int
    busy: int
    no_answer: int
    failed: int
    voicemail: int

    @classmethod
    def from_json(cls, data: Json) -> StatusBreakdown:
        """From an outcome-keyed object."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class AttemptsPerContact:
    """How many contacts made exactly `attempts` call attempts."""

    attempts: int
    contacts: int


@dataclass(frozen=True, slots=True)
class AttemptsSection:
    """getCampaignStats?include=attempts: every attempt by outcome, and attempts per contact."""

    total: int
    by_outcome: StatusBreakdown
    per_contact: list[AttemptsPerContact]


@dataclass(frozen=True, slots=True)
class DurationBucket:
    """Answered calls whose talk time is at most `le` seconds (above the previous bucket's edge)."""

    le: int
    count: int


@dataclass(frozen=True, slots=True)
class DurationsSection:
    """getCampaignStats?include=durations: talk-time percentiles (seconds) and the histogram."""

    answered_calls: int
    p50: int
    p90: int
    p99: int
    percentile_error_bound: float
    histogram: list[DurationBucket]


@dataclass(frozen=True, slots=True)
class CampaignStats:
    """getCampaignStats' numbers (also each message of streamCampaignStats); docs/semantics.md.

    `attempts`, `durations` and `raw_outcomes` are None unless asked for with `include`.
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
    attempts: AttemptsSection | None = None
    durations: DurationsSection | None = None
    raw_outcomes: dict[str, int] | None = None

    @classmethod
    def from_json(cls, data: Json) -> CampaignStats:
        """From getCampaignStats' `data`."""
        attempts = data.get("attempts")
        durations = data.get("durations")
        plain = {name: data[name] for name in _STATS_PLAIN}
        return cls(
            **plain,
            call_status_breakdown=StatusBreakdown.from_json(data["call_status_breakdown"]),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            attempts=None
            if attempts is None
            else AttemptsSection(
                total=attempts["total"],
                by_outcome=StatusBreakdown.from_json(attempts["by_outcome"]),
                per_contact=[
                    AttemptsPerContact(p["attempts"], p["contacts"]) for p in attempts["per_contact"]
                ],
            ),
            durations=None
            if durations is None
            else DurationsSection(
                answered_calls=durations["answered_calls"],
                p50=durations["p50"],
                p90=durations["p90"],
                p99=durations["p99"],
                percentile_error_bound=durations["percentile_error_bound"],
                histogram=[DurationBucket(b["le"], b["count"]) for b in durations["histogram"]],
            ),
            raw_outcomes=None if data.get("raw_outcomes") is None else dict(data["raw_outcomes"]),
        )


_STATS_PLAIN = (
    "campaign_id",
    "campaign_name",
    "total_contacts",
    "calls_completed",
    "calls_failed",
    "calls_in_progress",
    "calls_pending",
    "success_rate",
    "average_call_duration",
    "total_call_duration",
)


@dataclass(frozen=True, slots=True)
class Figures:
    """The counts of one time-series bucket or of the window (docs/history.md)."""

    calls_started: int
    answered: int
    busy: int
    no_answer: int
    failed: int
    voicemail: int
    answered_talk_seconds: int
    contacts_completed: int
    contacts_failed: int
    success_rate: float

    @classmethod
    def from_json(cls, data: Json) -> Figures:
        """From a bucket or the totals."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class TimeseriesBucket:
    """One local bucket [start, end) of the time series and its figures."""

    start: str
    end: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class Timeseries:
    """getCampaignTimeseries' answer; `from_` is the API's `from` (a Python keyword), `to` its `to`."""

    campaign_id: str
    interval: Literal["minute", "hour", "day"]
    tz: str
    from_: str
    to: str
    buckets: list[TimeseriesBucket]
    totals: Figures

    @classmethod
    def from_json(cls, data: Json) -> Timeseries:
        """From getCampaignTimeseries' `data`."""
        return cls(
            campaign_id=data["campaign_id"],
            interval=data["interval"],
            tz=data["tz"],
            from_=data["from"],
            to=data["to"],
            buckets=[TimeseriesBucket(b["start"], b["end"], Figures.from_json(b)) for b in data["buckets"]],
            totals=Figures.from_json(data["totals"]),
        )


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact as the drill-down shows it (getContacts); phone, name None and metadata {} once erased."""

    contact_id: int
    phone: str | None
    name: str | None
    metadata: dict[str, Any] | None
    state: Literal["pending", "in_progress", "completed", "failed"]
    attempts: int
    last_outcome: Outcome | None
    last_call_at: str | None
    created_at: str
    erased_at: str | None

    @classmethod
    def from_json(cls, data: Json) -> Contact:
        """From one item of getContacts' `data`."""
        return cls(**_fields(data, _CONTACT_FIELDS))


_CONTACT_FIELDS = tuple(Contact.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Call:
    """A call (one attempt) as the drill-down shows it (getCalls, getContact)."""

    call_id: str
    contact_id: int
    phone: str | None
    attempt: int
    started_at: str
    answered_at: str | None
    ended_at: str | None
    outcome: Outcome | None
    raw_outcome: str | None
    duration_seconds: int | None

    @classmethod
    def from_json(cls, data: Json) -> Call:
        """From one call object."""
        return cls(**_fields(data, cls.__dataclass_fields__))


@dataclass(frozen=True, slots=True)
class ContactDetail(Contact):
    """getContact's answer: the contact's fields and its calls in attempt order."""

    calls: list[Call]

    @classmethod
    def from_json(cls, data: Json) -> ContactDetail:
        """From getContact's `data`."""
        return cls(**_fields(data, _CONTACT_FIELDS), calls=[Call.from_json(c) for c in data["calls"]])


@dataclass(frozen=True, slots=True)
class CarrierConnection:
    """A carrier connection, never with its secret."""

    connection_id: str
    provider: Literal["twilio", "retell", "vapi"]
    name: str | None
    webhook_url: str
    outcome_map: dict[str, str]
    created_at: str

    @classmethod
    def from_json(cls, data: Json) -> CarrierConnection:
        """From a connection object."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class DeletedConnection:
    """deleteCarrierConnection's answer."""

    connection_id: str
    deleted: bool

    @classmethod
    def from_json(cls, data: Json) -> DeletedConnection:
        """From deleteCarrierConnection's `data`."""
        return cls(connection_id=data["connection_id"], deleted=bool(data["deleted"]))


@dataclass(frozen=True, slots=True)
class CallbackVerdict:
    """What a stored carrier callback did when replayed: applied, duplicate, unmatched or ignored."""

    callback_id: str
    verdict: Literal["applied", "duplicate", "unmatched", "ignored"]
    reason: str | None

    @classmethod
    def from_json(cls, data: Json) -> CallbackVerdict:
        """From a verdict object."""
        return cls(data["callback_id"], data["verdict"], data.get("reason"))


@dataclass(frozen=True, slots=True)
class UnmatchedCallback:
    """A carrier callback callstats could not apply, raw as it arrived, and why."""

    callback_id: str
    connection_id: str
    provider: Literal["twilio", "retell", "vapi"]
    campaign_id: str | None
    call_id: str | None
    received_at: str
    reason: str | None
    query: str
    body: str

    @classmethod
    def from_json(cls, data: Json) -> UnmatchedCallback:
        """From one item of getUnmatchedCallbacks' `data`."""
        return cls(**_fields(data, cls.__dataclass_fields__))


@dataclass(frozen=True, slots=True)
class Health:
    """/health's answer: the process is up and runs `version`."""

    status: str
    version: str


class Sink(Protocol):
    """Where an export is written: a binary file, or anything with its `write(bytes)`."""

    def write(self, data: bytes, /) -> object:
        """Write one chunk of the file."""
        ...


@dataclass(frozen=True, slots=True)
class Export:
    """What an export wrote: the server's file name (Content-Disposition) and the bytes written."""

    file_name: str | None
    bytes_written: int


@dataclass(frozen=True, slots=True)
class AddContactsProgress:
    """Where an `add_contacts` call is, after each request: rows sent so far, of `rows_total` (None
    when the rows were an iterator of unknown length), and the result so far."""

    rows_sent: int
    rows_total: int | None
    result: AddContactsResult
