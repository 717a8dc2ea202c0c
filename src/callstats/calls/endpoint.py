"""POST /recordCallEvents as one plain ASGI endpoint: the ingestion hot path.

A carrier webhook sends one event per request, so the framework's per-request
machinery (dependencies run in worker threads, response models) cost more than
the write itself. This endpoint reads and parses the body, then hands it to group
commit (calls/group.py): the key check and the write happen in a worker thread, in
one transaction shared with the other requests waiting at that moment. The method
check, the error envelope and the body limit are web.HotEndpoint's.
calls/routes.py declares it for OpenAPI (that declaration is never mounted).
"""

from __future__ import annotations

import orjson

from callstats.accounts.service import key_id_of
from callstats.calls.group import GroupCommit
from callstats.calls.schemas import event_items
from callstats.calls.service import WriteRequest
from callstats.errors import ApiError
from callstats.feed import ChangeFeed
from callstats.web import Answer, HotEndpoint, Receive, Scope

PATH = "/recordCallEvents"


class RecordEventsEndpoint(HotEndpoint):
    """The ASGI endpoint recording call events; `groups` is the app's one group commit, which the
    carriers' webhooks write through too."""

    method = "POST"

    def __init__(self, groups: GroupCommit, feed: ChangeFeed) -> None:
        self.groups = groups
        self.feed = feed

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """Record one request's events: a malformed key is refused before the body is read."""
        plaintext = self.api_key(scope)
        key_id = key_id_of(plaintext)
        written = await self.groups.record(_request(plaintext, key_id, await self.read_body(receive)))
        if written.error is not None:
            raise written.error
        self.feed.publish_many(written.campaigns)
        return 200, (), orjson.dumps({"success": True, "data": written.result})


def _request(plaintext: str, key_id: str, body: bytes | ApiError) -> WriteRequest:
    """The request to write: the body's events, or why it is unusable (told only to a valid write key,
    after the key check in the transaction)."""
    if isinstance(body, ApiError):
        return WriteRequest([], plaintext, key_id, problem=body)
    try:
        return WriteRequest(event_items(body), plaintext, key_id)
    except ApiError as exc:
        return WriteRequest([], plaintext, key_id, problem=exc)
