"""What one verified carrier callback says, in our terms: the shapes every provider module returns. Pure.

Each provider module (twilio.py, retell.py, vapi.py) turns a callback into one `CallFacts`: the call
it is about, what it tells of the campaign and contact, and the call events (the items
recordCallEvents takes) it amounts to. A raw status or reason the module does not know is never
guessed: the facts carry no events and say why in `unmatched`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class CarrierEvent(NamedTuple):
    """One of our call events, as a recordCallEvents item carries it (campaign and contact aside).

    `event_id` is `<provider>:<call id>:<stage>`: the same callback delivered again gives the same
    id (a duplicate), and each stage of one call its own. `type` is one of `EVENT_TYPES`;
    `occurred_at_ms` epoch milliseconds; `outcome` (one of `OUTCOMES`) only on call.ended;
    `duration_seconds` the talk time in whole seconds, non-zero only for an answered call.
    """

    event_id: str
    type: str
    occurred_at_ms: int
    outcome: str | None = None
    duration_seconds: int = 0


class CallFacts(NamedTuple):
    """What one verified callback says.

    `phone` is the dialed number as the platform sent it (not normalized); `campaign_id` and
    `contact_id` come from the platform's call metadata when it carries them (None otherwise, and
    always for Twilio, which has none). `events` are in the order to apply them, and empty when the
    callback changes no number (Retell's call_analyzed, a Vapi message type we ignore) or cannot be
    mapped. `raw_outcome` is `<provider>:<raw value>` for a callback that ends the call (the raw value
    is also the key an outcome override names). `unmatched` says why the callback cannot be mapped
    (an unknown status or reason, a missing field), None when it can.
    """

    provider: str
    call_id: str
    phone: str | None = None
    campaign_id: str | None = None
    contact_id: str | None = None
    events: tuple[CarrierEvent, ...] = ()
    raw_outcome: str | None = None
    unmatched: str | None = None


def event_id(provider: str, call_id: str, stage: str) -> str:
    """The deterministic id of one stage of one call: `<provider>:<call id>:<stage>`."""
    return f"{provider}:{call_id}:{stage}"


def raw_outcome(provider: str, raw: str) -> str:
    """How a call's raw carrier outcome is kept and counted: `twilio:no-answer`, `retell:dial_busy`."""
    return f"{provider}:{raw}"


def outcome_of(raw: str, defaults: Mapping[str, str], overrides: Mapping[str, str]) -> str | None:
    """Our outcome for a raw status or reason: the connection's override if it names `raw`, else the
    provider's default table, else None (unknown: the caller reports it unmatched, never guesses)."""
    return overrides.get(raw) or defaults.get(raw)


def merged(defaults: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """The whole table a connection applies: the provider's defaults with its overrides on top."""
    return {**defaults, **overrides}


def talk_seconds(start_ms: int, end_ms: int) -> int | None:
    """The talk time between two epoch-millisecond instants in whole seconds (half up), None when the
    end comes before the start."""
    if end_ms < start_ms:
        return None
    return (end_ms - start_ms + 500) // 1000


def integer(value: object) -> int | None:
    """A JSON or form value read as a whole number: an int (not a bool), an integral float or a string
    of digits; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def metadata_ids(metadata: object) -> tuple[str | None, str | None]:
    """`campaign_id` and `contact_id` from a platform's call metadata (a JSON object), as strings;
    a missing or non-scalar value (an object, a list, a bool) is None."""
    if not isinstance(metadata, Mapping):
        return None, None
    return _scalar(metadata.get("campaign_id")), _scalar(metadata.get("contact_id"))


def text(value: object) -> str | None:
    """A JSON value that should be a non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def _scalar(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return text(value)
