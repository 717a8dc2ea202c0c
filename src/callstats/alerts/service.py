"""Alerting use cases: webhook endpoints (create, list, delete, rotate the secret), alert rules (create,
list, delete), deliveries (list with their attempts, send one again now)."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from callstats.alerts import queries
from callstats.alerts.addresses import checked_url
from callstats.alerts.schemas import (
    AlertRule,
    CreateAlertRule,
    CreateWebhookEndpoint,
    Deleted,
    DeliveryAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from callstats.core.alerts import EVENT_TYPES
from callstats.db.engine import Database
from callstats.errors import CampaignNotFound, NotFound
from callstats.pages import decode_cursor, encode_cursor
from callstats.sealing import SecretBox
from callstats.stats.response import iso_utc

PREVIOUS_SECRET_MS = 24 * 3_600_000  # a rotated secret keeps signing beside the new one for 24 h


class EndpointNotFound(NotFound):
    """No such live webhook endpoint for this account."""

    default_message = "Webhook endpoint not found"


class RuleNotFound(NotFound):
    """No such live alert rule for this account."""

    default_message = "Alert rule not found"


class DeliveryNotFound(NotFound):
    """No such delivery for this account (or its endpoint was deleted)."""

    default_message = "Webhook delivery not found"


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _shown_endpoint(row: Mapping[Any, Any], secret: str | None = None) -> WebhookEndpoint:
    until = row.get("previous_until")
    return WebhookEndpoint(
        endpoint_id=row["id"],
        url=row["url"],
        events=row["events"].split(","),
        campaign_id=row["campaign_id"],
        format=row["format"],
        created_at=iso_utc(row["created_at"]) or "",
        secret=secret,
        previous_secret_expires_at=iso_utc(until),
    )


def create_endpoint(
    db: Database, box: SecretBox, account_id: str, body: CreateWebhookEndpoint, allow_private: bool, now: int
) -> WebhookEndpoint:
    """Store a new endpoint of the account; its secret (whsec_...) is in the answer, and only there.

    Raises RefusedUrl (400) for a URL of a private host (unless `allow_private`), CampaignNotFound
    (404) for a campaign_id the account has not, NoSecretKey (503) when no key seals the secret.
    """
    url = checked_url(body.url, allow_private)
    secret = new_secret()
    values = {
        "id": str(uuid.uuid4()),
        "account_id": account_id,
        "url": url,
        "events": ",".join(body.events or EVENT_TYPES),
        "campaign_id": body.campaign_id,
        "format": body.format,
        "secret_sealed": box.seal(secret),
        "created_at": now,
    }

    def work(conn: Connection) -> None:
        if body.campaign_id is not None and not queries.campaign_exists(conn, account_id, body.campaign_id):
            raise CampaignNotFound()
        queries.insert_endpoint(conn, values)

    db.write(work)
    return _shown_endpoint(values, secret)


def list_endpoints(db: Database, account_id: str) -> list[WebhookEndpoint]:
    """The account's live endpoints, newest first, without their secrets."""
    with db.read() as conn:
        return [_shown_endpoint(row) for row in queries.live_endpoints(conn, account_id)]


def delete_endpoint(db: Database, account_id: str, endpoint_id: str, now: int) -> Deleted:
    """Delete an endpoint (its messages not yet sent become failed); EndpointNotFound (404)."""
    if not db.write(lambda conn: queries.mark_endpoint_deleted(conn, account_id, endpoint_id, now)):
        raise EndpointNotFound()
    return Deleted(id=endpoint_id)


def rotate_secret(
    db: Database, box: SecretBox, account_id: str, endpoint_id: str, now: int
) -> WebhookEndpoint:
    """A new secret for the endpoint, in the answer only; the one it replaces keeps signing beside it
    for 24 hours (each message then carries both signatures). EndpointNotFound (404)."""
    secret = new_secret()
    sealed = box.seal(secret)

    def work(conn: Connection) -> dict[str, Any]:
        row = queries.endpoint_row(conn, account_id, endpoint_id)
        if row is None:
            raise EndpointNotFound()
        queries.rotate_secret(conn, endpoint_id, sealed, row["secret_sealed"], now + PREVIOUS_SECRET_MS)
        return {**row, "previous_until": now + PREVIOUS_SECRET_MS}

    return _shown_endpoint(db.write(work), secret)


def _shown_rule(row: Mapping[Any, Any]) -> AlertRule:
    return AlertRule(
        rule_id=row["id"],
        name=row["name"],
        metric=row["metric"],
        op=row["op"],
        value=float(row["value"]),
        campaign_id=row["campaign_id"],
        min_final_contacts=row["min_final_contacts"],
        created_at=iso_utc(row["created_at"]) or "",
    )


def create_rule(db: Database, account_id: str, body: CreateAlertRule, now: int) -> AlertRule:
    """Store a new rule; it is evaluated from the next change of a campaign's counters (and the next
    timer tick). CampaignNotFound (404) for a campaign_id the account has not."""
    values = {
        "id": str(uuid.uuid4()),
        "account_id": account_id,
        "campaign_id": body.campaign_id,
        "name": body.name,
        "metric": body.metric,
        "op": body.op,
        "value": body.value,
        "min_final_contacts": body.min_final_contacts,
        "created_at": now,
    }

    def work(conn: Connection) -> None:
        if body.campaign_id is not None and not queries.campaign_exists(conn, account_id, body.campaign_id):
            raise CampaignNotFound()
        queries.insert_rule(conn, values)

    db.write(work)
    return _shown_rule(values)


def list_rules(db: Database, account_id: str) -> list[AlertRule]:
    """The account's live rules, newest first."""
    with db.read() as conn:
        return [_shown_rule(row) for row in queries.live_rules(conn, account_id)]


def delete_rule(db: Database, account_id: str, rule_id: str, now: int) -> Deleted:
    """Delete a rule (a campaign it had triggered gets no alert.resolved); RuleNotFound (404)."""
    if not db.write(lambda conn: queries.mark_rule_deleted(conn, account_id, rule_id, now)):
        raise RuleNotFound()
    return Deleted(id=rule_id)


def _shown_delivery(row: Mapping[Any, Any], attempts: list[Any]) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=row["id"],
        endpoint_id=row["endpoint_id"],
        campaign_id=row["campaign_id"],
        event_type=row["event_type"],
        status=row["status"],
        created_at=iso_utc(row["created_at"]) or "",
        next_attempt_at=iso_utc(row["next_attempt_at"]) if row["status"] == "pending" else None,
        delivered_at=iso_utc(row["delivered_at"]),
        attempts=[
            DeliveryAttempt(
                attempted_at=iso_utc(a["attempted_at"]) or "",
                status_code=a["status_code"],
                error=a["error"],
                duration_ms=a["duration_ms"],
            )
            for a in attempts
        ],
        payload=json.loads(row["payload"]),
    )


def list_deliveries(
    db: Database,
    account_id: str,
    endpoint_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookDelivery], str | None]:
    """A page of the account's deliveries, newest first, with their attempts, and the next page's cursor
    (None on the last). ValidationFailed (400) for a bad cursor."""
    after = decode_cursor(cursor) if cursor else None
    with db.read() as conn:
        rows = queries.deliveries_page(conn, account_id, endpoint_id, status, limit + 1, after)
        attempts = queries.attempts_of(conn, [row["id"] for row in rows[:limit]])
    page = [_shown_delivery(row, attempts[row["id"]]) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, encode_cursor(last["created_at"], last["id"]) if last is not None else None


def retry_delivery(db: Database, account_id: str, delivery_id: str, now: int) -> WebhookDelivery:
    """Send a delivery again now (pending, due at once; its webhook-id unchanged). DeliveryNotFound
    (404) when the account has no such delivery or its endpoint was deleted."""

    def work(conn: Connection) -> WebhookDelivery:
        if not queries.due_now(conn, account_id, delivery_id, now):
            raise DeliveryNotFound()
        row = queries.delivery(conn, account_id, delivery_id)
        assert row is not None
        return _shown_delivery(row, queries.attempts_of(conn, [delivery_id])[delivery_id])

    return db.write(work)
