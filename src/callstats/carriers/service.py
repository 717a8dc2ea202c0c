"""Carrier connection use cases: create, list and delete, and the connection a webhook names."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from time import monotonic
from typing import Any, NamedTuple

from anyio.to_thread import run_sync
from sqlalchemy import Connection

from callstats.carriers import queries
from callstats.carriers.public_url import webhook_url
from callstats.carriers.schemas import CarrierConnection, CreateCarrierConnection, DeletedConnection
from callstats.clock import now_ms
from callstats.db.engine import Database
from callstats.errors import NotFound
from callstats.sealing import SecretBox
from callstats.stats.response import iso_utc


class ConnectionNotFound(NotFound):
    """No such live carrier connection (for this account, or of this provider for a webhook)."""

    default_message = "Carrier connection not found"


class WebhookConnection(NamedTuple):
    """What a webhook needs of its connection: the account it writes to, the provider's signing secret
    (plaintext: compare it in constant time, never log it) and the user's outcome overrides."""

    account_id: str
    secret: str
    outcome_map: dict[str, str]


def _outcome_map(stored: str | None) -> dict[str, str]:
    """The stored JSON overrides, {} when none."""
    return dict(json.loads(stored)) if stored else {}


def _shown(row: Mapping[Any, Any], base: str) -> CarrierConnection:
    """A stored connection (a row, or the values just inserted) as the API shows it."""
    return CarrierConnection(
        connection_id=row["id"],
        provider=row["provider"],
        name=row["name"],
        webhook_url=webhook_url(base, row["provider"], row["id"]),
        outcome_map=_outcome_map(row["outcome_map"]),
        created_at=iso_utc(row["created_at"]) or "",
    )


def create_connection(
    db: Database, box: SecretBox, account_id: str, body: CreateCarrierConnection, base: str
) -> CarrierConnection:
    """Store a new connection of the account, its secret sealed; `base` is the public base URL of
    its webhook_url. Raises NoSecretKey (503) when there is no key to seal with: nothing is stored."""
    values = {
        "id": str(uuid.uuid4()),
        "account_id": account_id,
        "provider": body.provider,
        "name": body.name,
        "secret_sealed": box.seal(body.secret),
        "outcome_map": json.dumps(body.outcome_map) if body.outcome_map else None,
        "created_at": now_ms(),
    }
    db.write(lambda conn: queries.insert_connection(conn, values))
    return _shown(values, base)


def list_connections(db: Database, account_id: str, base: str) -> list[CarrierConnection]:
    """The account's connections not deleted, newest first, with their webhook URLs under `base`."""
    with db.read() as conn:
        rows = queries.live_connections(conn, account_id)
    return [_shown(row, base) for row in rows]


def delete_connection(db: Database, account_id: str, connection_id: str) -> DeletedConnection:
    """Delete one connection of the account (its stored callbacks keep it); ConnectionNotFound (404)
    when the account has no such live connection."""
    if not db.write(lambda conn: queries.mark_deleted(conn, account_id, connection_id, now_ms())):
        raise ConnectionNotFound()
    return DeletedConnection(connection_id=connection_id)


def webhook_connection(
    conn: Connection, box: SecretBox, provider: str, connection_id: str
) -> WebhookConnection:
    """The live connection of `provider` with this id (canonical UUID text), its secret opened.

    Raises ConnectionNotFound (404) when it is unknown, deleted or of another provider, and
    UnreadableSecret or NoSecretKey (503) when no configured key opens its secret.
    """
    row = queries.webhook_connection(conn, provider, connection_id)
    if row is None:
        raise ConnectionNotFound()
    return WebhookConnection(
        row["account_id"], box.unseal(row["secret_sealed"]), _outcome_map(row["outcome_map"])
    )


def connection_for_webhook(
    db: Database, box: SecretBox, provider: str, connection_id: str
) -> WebhookConnection:
    """webhook_connection in a read of its own."""
    with db.read() as conn:
        return webhook_connection(conn, box, provider, connection_id)


class LiveConnections:
    """The connections webhooks name, each kept for `ttl_seconds` once read, per process: a callback
    then costs no read transaction of its own (half a webhook's CPU before, docs/performance.md).

    Only live connections are kept (an unknown id is read again each time), at most MAX_KEPT.
    `forget` drops one at once: this process's deleteCarrierConnection calls it, so there its
    webhooks answer 404 from the next callback on; another process stops accepting them within
    `ttl_seconds`.
    """

    MAX_KEPT = 10_000

    def __init__(self, db: Database, box: SecretBox, ttl_seconds: float = 1.0) -> None:
        self.db = db
        self.box = box
        self.ttl_seconds = ttl_seconds
        self._kept: dict[tuple[str, str], tuple[float, WebhookConnection]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future[WebhookConnection]] = {}

    async def get(self, provider: str, connection_id: str) -> WebhookConnection:
        """The live connection of `provider` with this id (see webhook_connection; raises alike).

        When it must be read, the callbacks that ask meanwhile wait for that one read (as many
        arrive at once when it expires) instead of each reading it.
        """
        key = (provider, connection_id)
        kept = self._kept.get(key)
        if kept is not None and kept[0] > monotonic():
            return kept[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._read(key))
            reading.add_done_callback(lambda _done: self._reading.pop(key, None))
        return await asyncio.shield(reading)  # one caller leaving does not cancel the others' read

    async def _read(self, key: tuple[str, str]) -> WebhookConnection:
        connection = await run_sync(connection_for_webhook, self.db, self.box, *key)
        if len(self._kept) >= self.MAX_KEPT:
            self._kept.clear()
        self._kept[key] = (monotonic() + self.ttl_seconds, connection)
        return connection

    def forget(self, connection_id: str) -> None:
        """Drop a connection (deleted in this process)."""
        for key in list(self._kept):  # a copy: the route calls this from a worker thread
            if key[1] == connection_id:
                self._kept.pop(key, None)
