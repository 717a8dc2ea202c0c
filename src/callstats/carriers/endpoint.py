"""POST /webhooks/{provider}/{connectionId} as one plain ASGI endpoint: the platforms' callbacks.

A platform sends one callback per request, as a carrier webhook sends one event per request to
recordCallEvents (calls/endpoint.py), so this endpoint skips the framework's per-request machinery
the same way: its dependencies, solved in worker threads, cost several times the callback's own
work (docs/performance.md, issue 11). It reads the path, the headers and the body, then hands the
callback to carriers/callbacks.receive, which verifies it and writes it through the app's group
commit. The method check, the error envelope and the body limit are web.HotEndpoint's.
carriers/routes.py declares it for OpenAPI (that declaration is never mounted).
"""

from __future__ import annotations

import orjson

from callstats.calls.group import GroupCommit
from callstats.carriers import callbacks
from callstats.carriers.public_url import public_base
from callstats.carriers.schemas import PROVIDERS
from callstats.carriers.service import ConnectionNotFound, LiveConnections
from callstats.clock import now_ms
from callstats.config import Settings
from callstats.db.engine import Database
from callstats.feed import ChangeFeed
from callstats.ids import canonical_uuid
from callstats.metrics.instruments import Metrics
from callstats.web import Answer, HotEndpoint, Receive, Scope

PREFIX = "/webhooks/"
ROUTE = PREFIX + "{provider}/{connectionId}"


class WebhookEndpoint(HotEndpoint):
    """The ASGI endpoint of the three platforms' webhooks."""

    method = "POST"

    def __init__(
        self,
        db: Database,
        groups: GroupCommit,
        feed: ChangeFeed,
        connections: LiveConnections,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics  # callstats_carrier_callbacks_total, by provider and verdict
        self.db = db
        self.groups = groups
        self.feed = feed
        self.connections = connections
        self.settings = settings

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """Verify, store and apply one callback: Twilio gets 204, Retell and Vapi the verdict.

        404 for a path that names no platform or no connection, 403 for a signature that does not
        hold (carriers/callbacks.receive); a body over the limit is a 413 once the path is known good.
        """
        provider, connection_id = _target(scope["path"])
        body = await self.read_body(receive)
        if not isinstance(body, bytes):
            raise body
        inbound = callbacks.Inbound(
            provider,
            connection_id,
            scope.get("query_string", b"").decode("latin-1"),
            {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]},
            body,
            now_ms(),
            public_base(scope, self.settings),
            _path_as_sent(scope),
        )
        try:
            verdict = await callbacks.receive(self.db, self.groups, self.connections, inbound)
        except callbacks.SignatureInvalid:
            self._count(provider, "refused")
            raise
        self._count(provider, verdict.verdict)
        self.feed.publish_many(verdict.campaigns)
        if provider == "twilio":
            return 204, (), b""
        shown = {"callback_id": verdict.callback_id, "verdict": verdict.verdict, "reason": verdict.reason}
        return 200, (), orjson.dumps({"success": True, "data": shown})

    def _count(self, provider: str, verdict: str) -> None:
        if self.metrics is not None:
            self.metrics.callback_received(provider, verdict)


def _target(path: str) -> tuple[str, str]:
    """The platform and the connection id (canonical) a webhook path names; ConnectionNotFound (404)
    when it names no known platform, no UUID, or has more segments (a URL callstats did not give)."""
    provider, _, raw_id = path.removeprefix(PREFIX).partition("/")
    if provider not in PROVIDERS or not raw_id or "/" in raw_id:
        raise ConnectionNotFound()
    try:
        return provider, canonical_uuid(raw_id)
    except ValueError:
        raise ConnectionNotFound() from None


def _path_as_sent(scope: Scope) -> str:
    """The request's path with its escapes and letter case as the client wrote it (what Twilio signs)."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) and raw else str(scope["path"])
