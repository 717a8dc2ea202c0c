"""Public identifiers: campaign ids are UUIDs, validated before any lookup."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated

from fastapi import Depends, Path

from callstats.errors import ValidationFailed


@functools.lru_cache(maxsize=4096)
def canonical_uuid(raw: str) -> str:
    """A UUID's canonical text (lowercase, hyphenated), the one form ids are stored and compared in;
    ValueError when `raw` is not a UUID. Cached: requests name the same few campaigns (errors are not)."""
    return str(uuid.UUID(raw))


@functools.lru_cache(maxsize=4096)  # the stats hot path: one cache hit per request
def campaign_uuid(raw: str) -> str:
    """The canonical form of a campaign id, or a 400 naming the field."""
    try:
        return canonical_uuid(raw)
    except (ValueError, AttributeError, TypeError):
        raise ValidationFailed(f"campaignId must be a UUID, got {raw[:64]!r}") from None


def _campaign_id_param(
    campaign_id: Annotated[str, Path(alias="campaignId", json_schema_extra={"format": "uuid"})],
) -> str:
    return campaign_uuid(campaign_id)


CampaignId = Annotated[str, Depends(_campaign_id_param)]


def _contact_id_param(
    contact_id: Annotated[str, Path(alias="contactId", description="A contact's id (a positive integer)")],
) -> int:
    digits = contact_id.isascii() and contact_id.isdigit() and len(contact_id) <= 19
    if not digits or not 0 < int(contact_id) <= MAX_CONTACT_ID:
        raise ValidationFailed(f"contactId must be a positive whole number, got {contact_id[:64]!r}")
    return int(contact_id)


MAX_CONTACT_ID = 2**63 - 1  # contacts.id is a BIGINT
ContactId = Annotated[int, Depends(_contact_id_param)]
