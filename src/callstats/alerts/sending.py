"""What goes on the wire for one message: the body in the endpoint's format and, for the standard
format, the Standard Webhooks headers signed with `standardwebhooks` (never a hand-written HMAC);
and when a failed attempt is tried again."""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook

RETRY_FOR_MS = 24 * 3_600_000  # a message is retried for 24 hours after it was queued, then failed
MAX_DELAY_MS = 3_600_000  # at most an hour between two attempts


def body_of(payload: str, format: str) -> bytes:
    """The request body: the payload itself (standard), or a Slack incoming-webhook message."""
    if format == "slack":
        return json.dumps({"text": slack_text(json.loads(payload))}).encode()
    return payload.encode()


def slack_text(payload: dict[str, Any]) -> str:
    """One line for Slack: the event, the campaign, the rule and the value."""
    data = payload["data"]
    campaign = f"{data['campaign']['name']} ({data['campaign']['campaign_id']})"
    rule = data.get("rule")
    if payload["type"] == "campaign.completed":
        return f":white_check_mark: Campaign {campaign} completed"
    if payload["type"] == "campaign.stalled":
        return f":warning: Campaign {campaign} stalled: no call event for a while"
    assert rule is not None
    verb = "triggered" if payload["type"] == "alert.triggered" else "resolved"
    icon = ":rotating_light:" if verb == "triggered" else ":large_green_circle:"
    condition = f"{rule['metric']} {rule['op']} {rule['value']:g}"
    return f'{icon} Alert "{rule["name"]}" {verb} on campaign {campaign}: {condition} (now {data["value"]})'


def signed_headers(message_id: str, body: bytes, secrets: list[str], at: datetime) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature (one `v1,...` per secret, space-separated:
    a receiver that knows either secret verifies it)."""
    signatures = [Webhook(secret).sign(message_id, at, body) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


def next_attempt(attempts: int, created_at: int, now: int, base_ms: int) -> int | None:
    """When to try again after `attempts` failed attempts (exponential, with full jitter in its upper
    half, at most an hour), or None once the 24 hours since `created_at` have run out."""
    delay = min(base_ms * 2 ** min(attempts - 1, 30), MAX_DELAY_MS)
    at = now + int(delay * random.uniform(0.5, 1.0))
    return at if at < created_at + RETRY_FOR_MS else None
