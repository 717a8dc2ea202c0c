"""Request and response shapes of the alerting routes: webhook endpoints, alert rules, deliveries."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callstats.bodies import StoredText, StrictInt, parse_json, validation_message
from callstats.core.alerts import EVENT_TYPES, EventType, Metric, Op
from callstats.errors import ValidationFailed
from callstats.ids import canonical_uuid
from callstats.pages import Pagination
from callstats.stats.schemas import CampaignStats

Format = Literal["standard", "slack"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
MAX_URL_CHARS = 2000
Model = TypeVar("Model", bound=BaseModel)


class CreateWebhookEndpoint(BaseModel):
    """Body of createWebhookEndpoint."""

    model_config = ConfigDict(extra="forbid")

    url: StoredText = Field(
        min_length=1, max_length=MAX_URL_CHARS, description="http(s) URL that receives the messages"
    )
    events: list[EventType] | None = Field(
        default=None, min_length=1, description="The event types it receives (default: all of them)"
    )
    campaign_id: str | None = Field(
        default=None, description="Only this campaign's messages", json_schema_extra={"format": "uuid"}
    )
    format: Format = Field(
        default="standard",
        description="`standard`: Standard Webhooks JSON, signed; `slack`: a Slack incoming-webhook message",
    )

    @field_validator("campaign_id")
    @classmethod
    def _campaign_uuid(cls, value: str | None) -> str | None:
        return None if value is None else _uuid(value)

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [e for e in EVENT_TYPES if e in value]


class CreateAlertRule(BaseModel):
    """Body of createAlertRule: `metric op value`, evaluated on every change of a campaign's counters."""

    model_config = ConfigDict(extra="forbid")

    name: StoredText = Field(min_length=1, max_length=200)
    metric: Metric
    op: Op
    value: float = Field(allow_inf_nan=False)
    campaign_id: str | None = Field(
        default=None,
        description="The campaign it watches (default: every campaign of the account)",
        json_schema_extra={"format": "uuid"},
    )
    min_final_contacts: StrictInt | None = Field(
        default=None, ge=1, le=1_000_000_000, description="Quiet until this many contacts are final"
    )

    @field_validator("campaign_id")
    @classmethod
    def _campaign_uuid(cls, value: str | None) -> str | None:
        return None if value is None else _uuid(value)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


def _uuid(raw: str) -> str:
    try:
        return canonical_uuid(raw)
    except (ValueError, AttributeError, TypeError):
        raise ValueError("must be a UUID") from None


def parsed_body(body: bytes, model: type[Model], route: str) -> Model:
    """A route's JSON body as `model`, read with the depth limit of every route; a 400 naming the field."""
    try:
        parsed = parse_json(body)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{exc.message}; {route} reads a JSON object") from None
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise ValidationFailed(validation_message(exc)) from None


def id_param(raw: str, name: str) -> str:
    """The canonical form of an id in the path or query, or a 400 naming it."""
    try:
        return canonical_uuid(raw)
    except (ValueError, AttributeError, TypeError):
        raise ValidationFailed(f"{name} must be a UUID, got {raw[:64]!r}") from None


class WebhookEndpoint(BaseModel):
    """An endpoint as the API shows it (its secret only when just created or rotated)."""

    endpoint_id: str = Field(json_schema_extra={"format": "uuid"})
    url: str
    events: list[EventType]
    campaign_id: str | None
    format: Format
    created_at: str
    secret: str | None = Field(
        default=None,
        description="The signing secret (whsec_...), shown only by createWebhookEndpoint and "
        "rotateWebhookSecret: keep it, it is never shown again",
    )
    previous_secret_expires_at: str | None = Field(
        default=None, description="Until when the secret before the last rotation also signs"
    )


class WebhookEndpointEnvelope(BaseModel):
    """One endpoint in the seed's envelope."""

    success: bool = True
    data: WebhookEndpoint


class WebhookEndpoints(BaseModel):
    """The account's endpoints, newest first."""

    endpoints: list[WebhookEndpoint]


class WebhookEndpointsEnvelope(BaseModel):
    """getWebhookEndpoints' answer in the seed's envelope."""

    success: bool = True
    data: WebhookEndpoints


class AlertRule(BaseModel):
    """An alert rule as the API shows it."""

    rule_id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    metric: Metric
    op: Op
    value: float
    campaign_id: str | None
    min_final_contacts: int | None
    created_at: str


class AlertRuleEnvelope(BaseModel):
    """One rule in the seed's envelope."""

    success: bool = True
    data: AlertRule


class AlertRules(BaseModel):
    """The account's rules, newest first."""

    rules: list[AlertRule]


class AlertRulesEnvelope(BaseModel):
    """getAlertRules' answer in the seed's envelope."""

    success: bool = True
    data: AlertRules


class Deleted(BaseModel):
    """The endpoint or rule is deleted."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    deleted: Literal[True] = True


class DeletedEnvelope(BaseModel):
    """deleteWebhookEndpoint's and deleteAlertRule's answer in the seed's envelope."""

    success: bool = True
    data: Deleted


class DeliveryAttempt(BaseModel):
    """One try at sending a message: when, the receiver's status code or the error, how long (ms)."""

    attempted_at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class PayloadCampaign(BaseModel):
    """The campaign a message is about."""

    campaign_id: str = Field(json_schema_extra={"format": "uuid"})
    name: str


class PayloadRule(BaseModel):
    """The rule an alert.* message is about."""

    rule_id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    metric: Metric
    op: Op
    value: float
    campaign_id: str | None
    min_final_contacts: int | None


class PayloadData(BaseModel):
    """A message's `data`: the campaign, the rule and the metric's value (null for campaign.*), and the
    campaign's full getCampaignStats object at that moment."""

    campaign: PayloadCampaign
    rule: PayloadRule | None
    metric: Metric | None
    value: float | None
    stats: CampaignStats


class WebhookPayload(BaseModel):
    """The body a standard-format endpoint receives (a Slack one gets `{"text": ...}` instead)."""

    type: EventType
    timestamp: str
    data: PayloadData


class WebhookDelivery(BaseModel):
    """One message to one endpoint: its state, its attempts, when the next one is due."""

    delivery_id: str = Field(description="Also the webhook-id header, the same on every attempt")
    endpoint_id: str = Field(json_schema_extra={"format": "uuid"})
    campaign_id: str | None
    event_type: EventType
    status: DeliveryStatus
    created_at: str
    next_attempt_at: str | None
    delivered_at: str | None
    attempts: list[DeliveryAttempt]
    payload: WebhookPayload


class WebhookDeliveryEnvelope(BaseModel):
    """One delivery in the seed's envelope."""

    success: bool = True
    data: WebhookDelivery


class WebhookDeliveriesPage(BaseModel):
    """getWebhookDeliveries' answer: a page of deliveries, newest first."""

    success: bool = True
    data: list[WebhookDelivery]
    pagination: Pagination
