"""HTTP routes of alerting: webhook endpoints, alert rules, deliveries (docs/alerts.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from callstats.accounts.deps import ReadKey, WriteKey
from callstats.alerts import service
from callstats.alerts.schemas import (
    AlertRuleEnvelope,
    AlertRules,
    AlertRulesEnvelope,
    CreateAlertRule,
    CreateWebhookEndpoint,
    DeletedEnvelope,
    DeliveryStatus,
    WebhookDeliveriesPage,
    WebhookDeliveryEnvelope,
    WebhookEndpointEnvelope,
    WebhookEndpoints,
    WebhookEndpointsEnvelope,
    id_param,
    parsed_body,
)
from callstats.bodies import WholeNumber
from callstats.clock import Clock
from callstats.config import Settings
from callstats.db.deps import Db
from callstats.pages import PageSize, Pagination
from callstats.sealing import SecretBox
from callstats.web import RawBody

router = APIRouter(tags=["alerts"])


def _body_of(model: type[Any]) -> dict[str, Any]:
    """OpenAPI's request body for a route that reads its body raw (bodies.parse_json's depth limit)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _now(request: Request) -> int:
    clock: Clock = request.app.state.clock
    return clock()


def _endpoint_id(
    endpoint_id: Annotated[str, Path(alias="endpointId", json_schema_extra={"format": "uuid"})],
) -> str:
    return id_param(endpoint_id, "endpointId")


def _rule_id(rule_id: Annotated[str, Path(alias="ruleId", json_schema_extra={"format": "uuid"})]) -> str:
    return id_param(rule_id, "ruleId")


Box = Annotated[SecretBox, Depends(_secret_box)]
Config = Annotated[Settings, Depends(_settings)]
Now = Annotated[int, Depends(_now)]
EndpointId = Annotated[str, Depends(_endpoint_id)]
RuleId = Annotated[str, Depends(_rule_id)]
_CAMPAIGN_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such campaign (campaign_id) for this key's account"}
}
_ENDPOINT_404: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such endpoint for this key's account"}
}


@router.post(
    "/createWebhookEndpoint",
    status_code=201,
    openapi_extra=_body_of(CreateWebhookEndpoint),
    responses=_CAMPAIGN_404,
)
def create_webhook_endpoint(
    key: WriteKey, db: Db, box: Box, settings: Config, now: Now, body: RawBody
) -> WebhookEndpointEnvelope:
    """Register a URL that receives alerts: 201 with its `secret` (whsec_..., shown only here).

    400 for a URL of a loopback, private or link-local host (unless CALLSTATS_WEBHOOK_ALLOW_PRIVATE);
    404 for an unknown campaign_id; 503 when the server has no key to encrypt the secret with.
    """
    fields = parsed_body(body, CreateWebhookEndpoint, "createWebhookEndpoint")
    endpoint = service.create_endpoint(db, box, key.account_id, fields, settings.webhook_allow_private, now)
    return WebhookEndpointEnvelope(data=endpoint)


@router.get("/getWebhookEndpoints")
def get_webhook_endpoints(key: ReadKey, db: Db) -> WebhookEndpointsEnvelope:
    """The account's webhook endpoints, newest first, without their secrets."""
    return WebhookEndpointsEnvelope(
        data=WebhookEndpoints(endpoints=service.list_endpoints(db, key.account_id))
    )


@router.post("/deleteWebhookEndpoint/{endpointId}", responses=_ENDPOINT_404)
def delete_webhook_endpoint(endpoint_id: EndpointId, key: WriteKey, db: Db, now: Now) -> DeletedEnvelope:
    """Delete an endpoint: it receives nothing more; its messages not yet delivered become `failed`."""
    return DeletedEnvelope(data=service.delete_endpoint(db, key.account_id, endpoint_id, now))


@router.post("/rotateWebhookSecret/{endpointId}", responses=_ENDPOINT_404)
def rotate_webhook_secret(
    endpoint_id: EndpointId, key: WriteKey, db: Db, box: Box, now: Now
) -> WebhookEndpointEnvelope:
    """A new signing secret (in this answer only); the old one also signs every message for 24 hours."""
    return WebhookEndpointEnvelope(data=service.rotate_secret(db, box, key.account_id, endpoint_id, now))


@router.post(
    "/createAlertRule", status_code=201, openapi_extra=_body_of(CreateAlertRule), responses=_CAMPAIGN_404
)
def create_alert_rule(key: WriteKey, db: Db, now: Now, body: RawBody) -> AlertRuleEnvelope:
    """A rule `metric op value` (on one campaign, or every campaign of the account): `alert.triggered`
    when it becomes true for a campaign, `alert.resolved` when it stops. 404 for an unknown campaign_id."""
    fields = parsed_body(body, CreateAlertRule, "createAlertRule")
    return AlertRuleEnvelope(data=service.create_rule(db, key.account_id, fields, now))


@router.get("/getAlertRules")
def get_alert_rules(key: ReadKey, db: Db) -> AlertRulesEnvelope:
    """The account's alert rules, newest first."""
    return AlertRulesEnvelope(data=AlertRules(rules=service.list_rules(db, key.account_id)))


@router.post("/deleteAlertRule/{ruleId}", responses={404: {"description": "No such rule for this account"}})
def delete_alert_rule(rule_id: RuleId, key: WriteKey, db: Db, now: Now) -> DeletedEnvelope:
    """Delete a rule: it is evaluated no more."""
    return DeletedEnvelope(data=service.delete_rule(db, key.account_id, rule_id, now))


@router.get("/getWebhookDeliveries")
def get_webhook_deliveries(
    key: ReadKey,
    db: Db,
    endpoint_id: Annotated[str | None, Query(json_schema_extra={"format": "uuid"})] = None,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Annotated[PageSize, WholeNumber, Query()] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> WebhookDeliveriesPage:
    """The account's messages, newest first, each with its attempts (time, status code, error), its
    next attempt and its state (`pending`, `delivered`, `failed`); pass back `next_cursor`."""
    endpoint = id_param(endpoint_id, "endpoint_id") if endpoint_id is not None else None
    page, next_cursor = service.list_deliveries(db, key.account_id, endpoint, status, limit, cursor)
    return WebhookDeliveriesPage(data=page, pagination=Pagination(next_cursor=next_cursor, limit=limit))


@router.post(
    "/retryWebhookDelivery/{deliveryId}",
    responses={404: {"description": "No such delivery, or its endpoint was deleted"}},
)
def retry_webhook_delivery(
    delivery_id: Annotated[str, Path(alias="deliveryId", max_length=40)], key: WriteKey, db: Db, now: Now
) -> WebhookDeliveryEnvelope:
    """Send a message again now, with the same webhook-id (a failed one gets one more attempt)."""
    return WebhookDeliveryEnvelope(data=service.retry_delivery(db, key.account_id, delivery_id, now))
