"""Request and response shapes of the carrier connection routes."""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callstats.bodies import StoredText, parse_json, validation_message
from callstats.core.outcomes import OUTCOMES
from callstats.errors import ValidationFailed
from callstats.ids import canonical_uuid
from callstats.pages import Pagination

Provider = Literal["twilio", "retell", "vapi"]
PROVIDERS: Final[tuple[str, ...]] = get_args(Provider)
MAX_SECRET_CHARS: Final = 512  # Twilio's auth token is 32 characters, Retell's and Vapi's keys under 100
MAX_RAW_CHARS: Final = 128  # a raw status or reason as a platform sends it
MAX_OUTCOME_MAP: Final = 200  # entries of one connection's outcome_map
_OUTCOME_MAP_SCHEMA: dict[str, Any] = {"additionalProperties": {"type": "string", "enum": list(OUTCOMES)}}


class CreateCarrierConnection(BaseModel):
    """Body of createCarrierConnection."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider = Field(description="The platform whose webhooks this connection receives")
    secret: StoredText = Field(
        min_length=1,
        max_length=MAX_SECRET_CHARS,
        repr=False,  # never in a log line or an error's text
        description="The platform's signing secret: Twilio's auth token, Retell's API key (the one with "
        "the webhook badge), Vapi's credential secret. Stored encrypted, never returned; surrounding "
        "whitespace is dropped",
        json_schema_extra={"format": "password", "writeOnly": True},
    )
    name: StoredText | None = Field(default=None, max_length=200, description="A label of your choice")
    outcome_map: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_OUTCOME_MAP,
        description="Overrides of the mapping: {raw status or reason as the platform sends it: outcome}",
        json_schema_extra=_OUTCOME_MAP_SCHEMA,
    )

    @field_validator("secret")
    @classmethod
    def _secret_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank (leave it out for none)")
        return None if value is None else value.strip()

    @field_validator("outcome_map")
    @classmethod
    def _known_outcomes(cls, value: dict[str, str]) -> dict[str, str]:
        for raw, outcome in value.items():
            if not raw or raw != raw.strip() or len(raw) > MAX_RAW_CHARS or "\x00" in raw:
                raise ValueError(
                    f"key {raw[:64]!r} is not a raw status: 1-{MAX_RAW_CHARS} characters as the platform "
                    "sends them, without surrounding spaces"
                )
            if outcome not in OUTCOMES:
                raise ValueError(
                    f"{raw[:64]!r}: {outcome[:64]!r} is not an outcome; use one of {', '.join(OUTCOMES)}"
                )
        return value


def create_connection_body(body: bytes) -> CreateCarrierConnection:
    """createCarrierConnection's body, parsed with the depth limit of every route; a 400 naming the field
    (never quoting the secret) when it is not one."""
    try:
        parsed = parse_json(body)
    except ValidationFailed as exc:
        raise ValidationFailed(
            f'{exc.message}; createCarrierConnection reads a JSON object, e.g. {{"provider": "twilio", '
            '"secret": "..."}'
        ) from None
    try:
        return CreateCarrierConnection.model_validate(parsed)
    except ValidationError as exc:
        raise ValidationFailed(validation_message(exc)) from None


def connection_uuid(raw: str) -> str:
    """The canonical form of a connection id, or a 400 naming the field."""
    return _uuid_param(raw, "connectionId")


def callback_uuid(raw: str) -> str:
    """The canonical form of a callback id, or a 400 naming the field."""
    return _uuid_param(raw, "callbackId")


def _uuid_param(raw: str, name: str) -> str:
    try:
        return canonical_uuid(raw)
    except (ValueError, AttributeError, TypeError):
        raise ValidationFailed(f"{name} must be a UUID, got {raw[:64]!r}") from None


class CarrierConnection(BaseModel):
    """A carrier connection as the API shows it: everything but the secret."""

    connection_id: str = Field(json_schema_extra={"format": "uuid"})
    provider: Provider
    name: str | None
    webhook_url: str = Field(description="Give this URL to the platform as its webhook / status callback URL")
    outcome_map: dict[str, str] = Field(json_schema_extra=_OUTCOME_MAP_SCHEMA)
    created_at: str


class CarrierConnectionEnvelope(BaseModel):
    """One connection in the seed's envelope."""

    success: bool = True
    data: CarrierConnection


class CarrierConnections(BaseModel):
    """The account's connections, newest first."""

    connections: list[CarrierConnection]


class CarrierConnectionsEnvelope(BaseModel):
    """getCarrierConnections' answer in the seed's envelope."""

    success: bool = True
    data: CarrierConnections


class DeletedConnection(BaseModel):
    """The connection is deleted: its webhooks answer 404 from now on."""

    connection_id: str = Field(json_schema_extra={"format": "uuid"})
    deleted: Literal[True] = True


class DeletedConnectionEnvelope(BaseModel):
    """deleteCarrierConnection's answer in the seed's envelope."""

    success: bool = True
    data: DeletedConnection


class CallbackVerdict(BaseModel):
    """What a carrier callback did (a webhook's or replayCallback's answer): `applied`, `duplicate`,
    `unmatched` (with `reason`) or `ignored` (a message that changes no number)."""

    callback_id: str = Field(json_schema_extra={"format": "uuid"})
    verdict: Literal["applied", "duplicate", "unmatched", "ignored"]
    reason: str | None = None


class CallbackVerdictEnvelope(BaseModel):
    """A callback's verdict in the seed's envelope."""

    success: bool = True
    data: CallbackVerdict


class UnmatchedCallback(BaseModel):
    """A stored callback callstats could not apply, as it arrived, and why."""

    callback_id: str = Field(json_schema_extra={"format": "uuid"})
    connection_id: str = Field(json_schema_extra={"format": "uuid"})
    provider: Provider
    campaign_id: str | None
    call_id: str | None
    received_at: str
    reason: str | None
    query: str = Field(description="The webhook URL's query string as received")
    body: str = Field(description="The raw body as received (form-encoded for Twilio, JSON otherwise)")


class UnmatchedCallbacksPage(BaseModel):
    """getUnmatchedCallbacks' answer: a page of unmatched callbacks, newest first."""

    success: bool = True
    data: list[UnmatchedCallback]
    pagination: Pagination
