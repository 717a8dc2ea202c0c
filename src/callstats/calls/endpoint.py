"""POST /recordCallEvents as one plain ASGI endpoint: the ingestion hot path.

A carrier webhook sends one event per request, so the framework's per-request
machinery (dependencies run in worker threads, response models) cost more than
the write itself. This endpoint reads the body, then checks the key and writes
the events in one worker-thread hop, on one connection and in one transaction.
Statuses, error envelopes and fields are the route's (calls/routes.py, which
declares it for OpenAPI).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from anyio import CapacityLimiter
from anyio.to_thread import run_sync

from callstats.accounts.service import key_id_of, writer_account
from callstats.calls import service
from callstats.calls.schemas import RecordEventsResult, event_items
from callstats.db.engine import Database
from callstats.errors import ApiError, MethodNotAllowed, PayloadTooLarge, rendered
from callstats.feed import ChangeFeed
from callstats.web import as_api_error

PATH = "/recordCallEvents"
WRITERS_SQLITE = 4
WRITERS_POSTGRESQL = 8
Message = MutableMapping[str, Any]


class RecordEventsEndpoint:
    """The ASGI endpoint recording call events."""

    def __init__(self, db: Database, feed: ChangeFeed, region: str) -> None:
        self.db = db
        self.feed = feed
        self.region = region
        # A few writers at a time: more threads only contend for the GIL and the database's locks.
        self.writers = CapacityLimiter(WRITERS_SQLITE if db.is_sqlite else WRITERS_POSTGRESQL)

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """Answer one recordCallEvents request."""
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed()
            plaintext = _header(scope, b"x-api-key")
            key_id = key_id_of(plaintext)
            body = await _body(receive)
            result, campaigns = await run_sync(self._record, plaintext, key_id, body, limiter=self.writers)
            self.feed.publish_many(campaigns)
            headers: dict[str, str] = {}
            status, payload = 200, orjson.dumps({"success": True, "data": result})
        except _Disconnected:
            return
        except Exception as exc:
            status, headers, envelope = rendered(as_api_error(exc))
            payload = orjson.dumps(envelope)
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    def _record(
        self, plaintext: str, key_id: str, body: bytes | ApiError
    ) -> tuple[RecordEventsResult, set[str]]:
        """Check the key and write, in one transaction; a bad body is told only to a valid write key.

        Returns the result and the campaigns it applied events to (what the change feed must hear about).
        """
        try:
            if isinstance(body, ApiError):
                raise body
            items = event_items(body)
        except ApiError:
            with self.db.read() as conn:
                writer_account(conn, plaintext, key_id)
            raise
        result = service.record_events_as(
            self.db, lambda conn: writer_account(conn, plaintext, key_id), items, self.region
        )
        return result, service.applied_campaigns(items, result)


def _header(scope: Message, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


class _Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


async def _body(receive: Callable[[], Awaitable[Message]]) -> bytes | ApiError:
    """The request body; over the size limit (the dispatcher's receive raises), the error to show later."""
    chunks = []
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
    except PayloadTooLarge as exc:
        return exc
