"""POST /recordCallEvents as one plain ASGI endpoint: the ingestion hot path.

A carrier webhook sends one event per request, so the framework's per-request
machinery (dependencies run in worker threads, response models) cost more than
the write itself. This endpoint reads and parses the body, then hands it to group
commit (calls/group.py): the key check and the write happen in a worker thread, in
one transaction shared with the other requests waiting at that moment.
calls/routes.py declares it for OpenAPI (that declaration is never mounted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from callstats.accounts.keys import presented
from callstats.accounts.service import key_id_of
from callstats.calls.group import GroupCommit
from callstats.calls.schemas import EventRules, event_items
from callstats.db.engine import Database
from callstats.errors import ApiError, MethodNotAllowed, PayloadTooLarge, rendered
from callstats.feed import ChangeFeed
from callstats.web import as_api_error, send_json

PATH = "/recordCallEvents"
WRITERS_SQLITE = 2
WRITERS_POSTGRESQL = 2
Message = MutableMapping[str, Any]


class RecordEventsEndpoint:
    """The ASGI endpoint recording call events."""

    def __init__(self, db: Database, feed: ChangeFeed, rules: EventRules) -> None:
        self.db = db
        self.feed = feed
        self.rules = rules
        # A few groups at a time: more threads only contend for the GIL and the database's locks.
        self.groups = GroupCommit(db, rules, WRITERS_SQLITE if db.is_sqlite else WRITERS_POSTGRESQL)

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """Answer one recordCallEvents request."""
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(("POST",))
            plaintext = presented(_header(scope, b"x-api-key"))
            key_id = key_id_of(plaintext)
            outcome = await self.groups.record(plaintext, key_id, _items(await _body(receive)))
            if isinstance(outcome, Exception):
                raise outcome
            result, campaigns = outcome
            self.feed.publish_many(campaigns)
            headers: dict[str, str] = {}
            status, payload = 200, orjson.dumps({"success": True, "data": result})
        except _Disconnected:
            return
        except Exception as exc:
            status, headers, envelope = rendered(as_api_error(exc, scope))
            payload = orjson.dumps(envelope)
        await send_json(send, status, headers.items(), payload)


def _items(body: bytes | ApiError) -> list[Any] | ApiError:
    """The body's events, or why it is unusable (told only to a valid write key, after the key check)."""
    if isinstance(body, ApiError):
        return body
    try:
        return event_items(body)
    except ApiError as exc:
        return exc


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
