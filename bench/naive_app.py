"""The naive way, for comparison: every stats read recomputes the numbers from the raw rows.

Same checks as callstats' hot path (UUID, key, tenancy) and the same response, but the
counters come from a GROUP BY over the campaign's contacts and a scan of its calls, run
on a worker thread as a synchronous driver would. BENCH_DATABASE_URL names the database.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from anyio.to_thread import run_sync
from sqlalchemy import text

from callstats.accounts import keys
from callstats.accounts.service import checked_key
from callstats.core.counters import Counters
from callstats.core.outcomes import OUTCOMES
from callstats.db.engine import Database
from callstats.errors import ApiError, CampaignNotFound, Unauthorized, rendered
from callstats.ids import campaign_uuid
from callstats.stats.response import stats_response

Message = MutableMapping[str, Any]
PREFIX = "/getCampaignStats/"

KEY_SQL = text("SELECT account_id, secret_hash, scope, revoked_at FROM api_keys WHERE id = :key_id")
CAMPAIGN_SQL = text("SELECT name FROM campaigns WHERE id = :cid AND account_id = :aid")
CONTACTS_SQL = text(
    "SELECT state, last_outcome, count(*), max(finalized_at) FROM contacts "
    "WHERE campaign_id = :cid GROUP BY state, last_outcome"
)
CALLS_SQL = text(
    "SELECT coalesce(sum(CASE WHEN outcome = 'answered' THEN duration_seconds ELSE 0 END), 0), "
    "min(started_at) FROM calls WHERE campaign_id = :cid"
)

db = Database(os.environ.get("BENCH_DATABASE_URL", "sqlite:///./callstats.db"), pool_size=40)


def recomputed(plaintext: str, campaign_id: str) -> Counters:
    """Authenticate, then count the campaign's contacts and calls."""
    key_id = keys.parse_key_id(plaintext)
    if key_id is None:
        raise Unauthorized("Invalid API key")
    with db.read() as conn:
        row = conn.execute(KEY_SQL, {"key_id": key_id}).first()
        key = checked_key(plaintext, key_id, (row[0], row[1], row[2], row[3]) if row else None)
        name = conn.execute(CAMPAIGN_SQL, {"cid": campaign_id, "aid": key.account_id}).scalar()
        if name is None:
            raise CampaignNotFound()
        groups = conn.execute(CONTACTS_SQL, {"cid": campaign_id}).all()
        talk, first_call = conn.execute(CALLS_SQL, {"cid": campaign_id}).one()
    states = dict.fromkeys(("pending", "in_progress", "completed", "failed"), 0)
    breakdown = dict.fromkeys(OUTCOMES, 0)
    last_final: int | None = None
    for state, last_outcome, count, finalized in groups:
        states[state] += count
        if last_outcome is not None:
            breakdown[last_outcome] += count
        if finalized is not None:
            last_final = finalized if last_final is None else max(last_final, finalized)
    total = sum(states.values())
    return Counters(
        campaign_id,
        name,
        total,
        talk_seconds=int(talk),
        breakdown=breakdown,
        first_call_at=first_call,
        last_final_at=last_final,
        **states,
    )


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """GET /getCampaignStats/{id}, recomputed on every request."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    try:
        campaign_id = campaign_uuid(scope["path"].removeprefix(PREFIX))
        plaintext = headers.get(b"x-api-key", b"").decode("latin-1")
        counters = await run_sync(recomputed, plaintext, campaign_id)
        status, body = 200, orjson.dumps({"success": True, "data": stats_response(counters)})
    except ApiError as error:
        status, _extra, envelope = rendered(error)
        body = orjson.dumps(envelope)
    response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
