"""Shapes of the drill-down and export routes, and the one function per row kind that builds them.

`contact_values` and `call_values` turn a row of reports/queries.py into the values every surface
shows, in the fields' order: as a dict (`contact_record`, `call_record`) in the JSON pages, getContact
and the NDJSON lines, cell by cell in the CSV rows. A field added there appears everywhere at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, Field, WithJsonSchema

from callstats.pages import Pagination
from callstats.stats.response import iso_utc

ContactState = Literal["pending", "in_progress", "completed", "failed"]
Outcome = Literal["answered", "busy", "no_answer", "failed", "voicemail"]
ExportFormat = Literal["csv", "ndjson"]
_JSON_VALUE = ["string", "number", "integer", "boolean", "array", "object", "null"]
Metadata = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "additionalProperties": {"type": _JSON_VALUE}}),
]
"""A contact's metadata: the JSON object addContacts stored."""


class Contact(BaseModel):
    """One contact as the drill-down shows it; times are ISO 8601 UTC."""

    contact_id: int
    phone: str | None = Field(
        description="E.164 plus any extension (`;ext=12`), the contact's identity; null once erased"
    )
    name: str | None
    metadata: Metadata | None
    state: ContactState
    attempts: int = Field(description="calls started for this contact")
    last_outcome: Outcome | None = Field(
        description="the outcome of its most recent finished call (kept while a retry is pending or live), "
        "as call_status_breakdown counts it; null before any call finished"
    )
    last_call_at: str | None = Field(description="when its latest attempt started; null if never called")
    created_at: str
    erased_at: str | None = Field(
        default=None, description="when forgetContact erased its phone, name and metadata (docs/privacy.md)"
    )


class Call(BaseModel):
    """One call (attempt) as the drill-down shows it; times are ISO 8601 UTC, durations whole seconds."""

    call_id: str
    contact_id: int
    phone: str
    attempt: int = Field(description="1 for the contact's first call, 2 for its first retry, ...")
    started_at: str
    answered_at: str | None
    ended_at: str | None = Field(description="null while the call is live")
    outcome: Outcome | None = Field(description="null while the call is live")
    raw_outcome: str | None = Field(description="the carrier's own outcome (`twilio:no-answer`) when known")
    duration_seconds: int | None = Field(description="talk time of an ended call; null while live")


class ContactDetail(Contact):
    """One contact with every call made to it, in attempt order."""

    calls: list[Call]


class ContactPage(BaseModel):
    """A page of a campaign's contacts in the seed's envelope."""

    success: bool = True
    data: list[Contact]
    pagination: Pagination


class ContactEnvelope(BaseModel):
    """One contact in the seed's envelope."""

    success: bool = True
    data: ContactDetail


class CallPage(BaseModel):
    """A page of a campaign's calls in the seed's envelope."""

    success: bool = True
    data: list[Call]
    pagination: Pagination


def _metadata(stored: str | None, erased: bool) -> dict[str, Any] | None:
    """The stored JSON object; `{}` once erased (forgetContact clears it), else null when none was given."""
    if stored is not None:
        loaded: dict[str, Any] = orjson.loads(stored)
        return loaded
    return {} if erased else None


def contact_values(row: Any) -> tuple[Any, ...]:
    """A contact row of reports/queries.py (its columns are CONTACT_FIELDS, in that order) as the API
    shows it, the values in CONTACT_FIELDS order (a CSV row's cells before the formula guard). Read
    by position: a row's attribute lookups cost more than the rest of an export."""
    contact_id, phone, name, metadata, state, attempts, last_outcome, last_call_at, created_at, erased_at = (
        row
    )
    return (
        contact_id,
        phone,
        name,
        _metadata(metadata, erased=erased_at is not None),
        state,
        attempts,
        last_outcome,
        iso_utc(last_call_at),
        iso_utc(created_at),
        iso_utc(erased_at),
    )


def call_values(row: Any) -> tuple[Any, ...]:
    """A call row of reports/queries.py (its columns are CALL_FIELDS, in that order) as the API shows it,
    the values in CALL_FIELDS order; `duration_seconds` is null until the call ended."""
    call_id, contact_id, phone, attempt, started_at, answered_at, ended_at, outcome, raw_outcome, duration = (
        row
    )
    return (
        call_id,
        contact_id,
        phone,
        attempt,
        iso_utc(started_at),
        iso_utc(answered_at),
        iso_utc(ended_at),
        outcome,
        raw_outcome,
        duration if ended_at is not None else None,
    )


# The values are built in the fields' order, one per field (tests/reports compare every field of every
# surface): zip's length check (strict=True) would cost a third of building a page's dicts.


def contact_record(row: Any) -> dict[str, Any]:
    """contact_values as the dict every JSON surface shows: `{"contact_id": ..., "phone": ..., ...}`."""
    return dict(zip(CONTACT_FIELDS, contact_values(row), strict=False))


def call_record(row: Any) -> dict[str, Any]:
    """call_values as the dict every JSON surface shows: `{"call_id": ..., "contact_id": ..., ...}`."""
    return dict(zip(CALL_FIELDS, call_values(row), strict=False))


CONTACT_FIELDS = tuple(Contact.model_fields)
CALL_FIELDS = tuple(Call.model_fields)
SPREADSHEET_PLAIN = frozenset(
    {"contact_id", "state", "attempts", "last_outcome", "last_call_at", "created_at", "erased_at"}
    | {"attempt", "started_at", "answered_at", "ended_at", "outcome", "duration_seconds"}
)
"""Fields holding only integers, this API's own words (Literal) or ISO times: written to CSV as they
are. Every other field (phone, name, call_id, raw_outcome: text; metadata: a JSON object) can hold
text that starts a formula, so its cells go through reports/exports.text_cell or json_cell."""
SPREADSHEET_JSON = frozenset({"metadata"})
"""Fields holding a JSON object: one CSV cell of its JSON text."""
