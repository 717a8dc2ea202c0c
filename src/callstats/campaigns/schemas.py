"""Request and response shapes of the campaign routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callstats.bodies import StoredText, StrictInt, parse_json, validation_message
from callstats.core.lifecycle import DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_ON
from callstats.core.outcomes import OUTCOMES
from callstats.core.phones import region_code
from callstats.core.status import (
    DEFAULT_STALL_AFTER_MINUTES,
    MAX_STALL_AFTER_MINUTES,
    STATUSES,
    CampaignStatus,
)
from callstats.errors import ValidationFailed
from callstats.ids import campaign_uuid
from callstats.pages import Pagination

MAX_CONTACTS_PER_REQUEST = 10_000
RETRYABLE = tuple(o for o in OUTCOMES if o != "answered")
# retry_on's items as OpenAPI shows them (the field stays a list of str, so that an unknown outcome gets
# the validator's sentence rather than pydantic's).
_RETRY_ON_SCHEMA: dict[str, Any] = {"items": {"type": "string", "enum": list(RETRYABLE)}, "uniqueItems": True}


class CreateCampaign(BaseModel):
    """Body of createCampaign."""

    model_config = ConfigDict(extra="forbid")

    name: StoredText = Field(min_length=1, max_length=200)
    max_attempts: StrictInt = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=100)
    retry_on: list[str] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        description="Outcomes after which a contact is called again ([] for none)",
        json_schema_extra={"items": {"type": "string", "enum": list(RETRYABLE)}},
    )
    default_region: str | None = Field(
        default=None,
        description="ISO 3166-1 alpha-2 region of numbers written without +country (default: the "
        "server's CALLSTATS_DEFAULT_REGION)",
        examples=["US", "GB"],
    )
    stall_after_minutes: StrictInt = Field(
        default=DEFAULT_STALL_AFTER_MINUTES,
        ge=1,
        le=MAX_STALL_AFTER_MINUTES,
        description="Minutes without an event after which a campaign with contacts left is `stalled`",
    )

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("retry_on")
    @classmethod
    def _known_outcomes(cls, value: list[str]) -> list[str]:
        unknown = [o for o in value if o not in RETRYABLE]
        if unknown:
            raise ValueError(f"unknown or non-retryable outcome(s) {unknown}; allowed: {list(RETRYABLE)}")
        return [o for o in RETRYABLE if o in value]

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        return None if value is None else region_code(value)


def create_campaign_body(body: bytes) -> CreateCampaign:
    """createCampaign's body, parsed with the depth limit of every route; a 400 saying why it is not one."""
    try:
        parsed = parse_json(body)
    except ValidationFailed as exc:
        raise ValidationFailed(
            f'{exc.message}; createCampaign reads its body as a JSON object, e.g. {{"name": "Spring"}}'
            " (Content-Type: application/json, or none)"
        ) from None
    try:
        return CreateCampaign.model_validate(parsed)
    except ValidationError as exc:
        raise ValidationFailed(validation_message(exc)) from None


class Campaign(BaseModel):
    """A campaign as the API shows it."""

    campaign_id: str
    name: str
    max_attempts: int
    retry_on: list[str] = Field(json_schema_extra=_RETRY_ON_SCHEMA)
    default_region: str
    total_contacts: int
    created_at: str
    stall_after_minutes: int
    status: CampaignStatus = Field(
        description="not_started (no call yet), running, stalled (contacts left and no event for "
        "stall_after_minutes), completed (completed_at set); docs/semantics.md"
    )
    last_event_at: str | None = Field(
        description="When callstats last received an event that changed a call or contact of the campaign "
        "(ISO 8601 UTC, the server's clock); null before the first"
    )


class CampaignEnvelope(BaseModel):
    """One campaign in the seed's envelope."""

    success: bool = True
    data: Campaign


class CampaignPage(BaseModel):
    """A page of campaigns in the seed's envelope."""

    success: bool = True
    data: list[Campaign]
    pagination: Pagination


class ContactIn(BaseModel):
    """One contact of addContacts' JSON body as OpenAPI shows it (contact_lists reads each and reports a
    bad one in the 200's `errors`, by row)."""

    phone: str = Field(description="E.164, or national in the request's or campaign's region; an extension")
    name: str | None = None
    metadata: dict[str, Any] | None = Field(
        default=None, description="Any JSON object, at most 32 levels deep"
    )


class AddContactsBody(BaseModel):
    """addContacts' JSON body as OpenAPI shows it (or send CSV, Content-Type: text/csv)."""

    contacts: list[ContactIn] = Field(max_length=MAX_CONTACTS_PER_REQUEST)


@dataclass(frozen=True)
class ContactRow:
    """One submitted contact, before validation of its phone; `row` is 1-based."""

    row: int
    phone: object
    name: object = None
    metadata: object = None
    problem: str | None = None


class InvalidRow(BaseModel):
    """Why one submitted row was not added; `phone` is the value sent, as text (null when none was)."""

    row: int
    phone: str | None
    reason: str


class DuplicateRow(BaseModel):
    """A row not added because its contact is already there.

    `phone` is the identity it repeats (E.164 plus any `;ext=`); `earlier_row` is the row of the same
    request that added it first, or null when the campaign already held it.
    """

    row: int
    phone: str
    earlier_row: int | None


class AddContactsResult(BaseModel):
    """What addContacts did with each row."""

    received: int
    accepted: int
    duplicate: int
    invalid: int
    errors: list[InvalidRow]
    duplicates: list[DuplicateRow]


class AddContactsEnvelope(BaseModel):
    """addContacts' answer in the seed's envelope."""

    success: bool = True
    data: AddContactsResult


def status_filter(value: str | None) -> CampaignStatus | None:
    """getCampaigns' `status` query parameter; ValidationFailed (400) for a value that is not a status."""
    if value is None:
        return None
    if value not in STATUSES:
        raise ValidationFailed(f"status: {value[:40]!r} is not one of {', '.join(STATUSES)}")
    found: CampaignStatus = value  # type: ignore[assignment]
    return found


class DeletedCampaign(BaseModel):
    """deleteCampaign's answer: the campaign deleted, with everything stored for it."""

    campaign_id: str
    deleted: bool = True


class DeletedCampaignEnvelope(BaseModel):
    """deleteCampaign's answer in the seed's envelope."""

    success: bool = True
    data: DeletedCampaign


class ForgottenContact(BaseModel):
    """forgetContact's answer: the contact erased, when (ISO 8601 UTC; the first erasure's time when it
    was erased before), and how many stored carrier callbacks of it were deleted by this request."""

    campaign_id: str
    contact_id: int
    erased_at: str
    callbacks_deleted: int


class ForgottenContactEnvelope(BaseModel):
    """forgetContact's answer in the seed's envelope."""

    success: bool = True
    data: ForgottenContact


MAX_SUMMARY_IDS = 200  # the largest page getCampaigns returns


class CampaignSummary(BaseModel):
    """One campaign's progress: the contact counts and success rate of getCampaignStats, same definitions."""

    campaign_id: str = Field(json_schema_extra={"format": "uuid"})
    total_contacts: int = Field(ge=0, description="contacts in the campaign")
    calls_completed: int = Field(ge=0, description="contacts in state completed (final: answered)")
    calls_failed: int = Field(ge=0, description="contacts in state failed (final: attempts used up)")
    calls_in_progress: int = Field(ge=0, description="contacts with a call under way")
    calls_pending: int = Field(ge=0, description="contacts not dialed yet or waiting for a retry")
    success_rate: float = Field(
        ge=0, le=100, description="100 * completed / (completed + failed), half-up to 2 decimals; 0 when none"
    )


class CampaignSummaries(BaseModel):
    """getCampaignSummaries' answer in the seed's envelope: the summaries in the order the ids were asked."""

    success: bool = True
    data: list[CampaignSummary]


def summary_ids(raw: str) -> list[str]:
    """getCampaignSummaries' `campaignIds`: the ids in canonical form, in first-occurrence order, repeats
    dropped. Raises ValidationFailed (400) naming the field for a malformed id, no id, or more than
    MAX_SUMMARY_IDS."""
    ids: dict[str, None] = {}
    for part in raw.split(","):
        if part.strip():
            try:
                ids[campaign_uuid(part.strip())] = None
            except ValidationFailed:
                raise ValidationFailed(f"campaignIds: {part.strip()[:64]!r} is not a UUID") from None
    if not ids:
        raise ValidationFailed("campaignIds: give at least one campaign id")
    if len(ids) > MAX_SUMMARY_IDS:
        raise ValidationFailed(f"campaignIds: at most {MAX_SUMMARY_IDS} ids, got {len(ids)}")
    return list(ids)
