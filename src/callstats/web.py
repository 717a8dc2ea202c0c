"""HTTP plumbing shared by every route: the one error mapper, the body limit, raw bodies, the hot
endpoints' base, the dispatcher."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Annotated, Any, ClassVar

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from callstats import logs
from callstats.accounts.keys import HEADER, presented
from callstats.db.engine import is_unreachable
from callstats.errors import (
    ApiError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
    rendered,
)
from callstats.metrics.instruments import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SANE_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no space, bounded
_campaign_id_shape = re.compile(r"[0-9a-fA-F-]{32,36}").fullmatch  # what a logged campaign id may look like
REQUEST_ID_KEY = "callstats.request_id"  # where a request's id is kept in its ASGI scope


def error_json(error: ApiError) -> JSONResponse:
    """The response for an ApiError."""
    status, headers, body = rendered(error)
    return JSONResponse(body, status_code=status, headers=headers)


def request_id(scope: Scope) -> str:
    """The id that ties an answer to its log lines: the client's `X-Request-Id` when sane (1-128
    printable ASCII characters, optional whitespace around it trimmed), else a new one (32 hex digits,
    _new_request_id). Kept in the scope, so a request's 500 and its access line name the same id."""
    kept: str | None = scope.get(REQUEST_ID_KEY)
    if kept is None:
        kept = scope[REQUEST_ID_KEY] = _sent_request_id(scope) or _new_request_id()
    return kept


def _new_request_id() -> str:
    """A new request id: this process's 64 random bits (from the OS, drawn again in a forked child)
    then a counter, 32 hex digits. Unique by construction, no system call per request; it names a
    request in the logs and is no secret (a client may send its own)."""
    return f"{_request_ids.prefix}{next(_request_ids.counter):016x}"


class _RequestIds:
    def __init__(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.draw)


def _sent_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            sent = bytes(value).decode("latin-1").strip(" \t")
            if _SANE_REQUEST_ID.fullmatch(sent):
                return sent
    return None


def as_api_error(exc: Exception, scope: Scope, unexpected: type[InternalError] = InternalError) -> ApiError:
    """The error to show for any exception of a request: the one mapper of every route, the framework's
    handlers and the hot endpoints alike.

    An ApiError as it is; the framework's invalid input (400) and HTTP errors (404, 405, 413, ...) in
    the envelope; an unreachable database (or other backend) a 503 with Retry-After; anything else an
    `unexpected` (500: InternalError, StatsFailed on the stats route) whose `X-Request-Id` names the one
    log line written for it (logs.unexpected_error: no message, SQL or traceback).
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestValidationError):
        return _validation_failed(exc)
    if isinstance(exc, StarletteHTTPException):
        return _framework_error(exc)
    method, path = str(scope.get("method", "")), str(scope.get("path", ""))
    if is_unreachable(exc):
        logs.backend_unavailable(exc, method, path)
        return ServiceUnavailable()
    rid = request_id(scope)
    logs.unexpected_error(exc, rid, method, path)
    return unexpected(request_id=rid)


def _validation_failed(exc: RequestValidationError) -> ValidationFailed:
    """The framework's invalid input as one 400: its first three problems, `field: why` each."""
    parts = []
    for error in exc.errors()[:3]:
        if error.get("type") == "json_invalid":
            parts.append("body: not valid JSON")
            continue
        loc = [str(p) for p in error.get("loc", ()) if p != "body"] or ["body"]
        parts.append(f"{'.'.join(loc)}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return ValidationFailed("; ".join(parts))


def _framework_error(exc: StarletteHTTPException) -> ApiError:
    """The framework's own HTTP errors in the envelope, each with the code its status has."""
    status = exc.status_code
    if status == 400:  # FastAPI's own body parser failed (bad JSON, nesting past its recursion limit)
        return ValidationFailed("body: not valid JSON")
    if status == 404:
        return NotFound("No such route")
    if status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(m.strip() for m in allowed.split(",") if m.strip())
    if status == 413:
        return PayloadTooLarge()
    error = ApiError(str(exc.detail))
    error.status = status
    error.code = "VALIDATION_ERROR" if status < 500 else "INTERNAL_SERVER_ERROR"
    return error


def _json_start(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Message:
    """The `http.response.start` message of a JSON answer: its type and length, then `headers`."""
    raw_headers = (
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status != 204  # No Content: no body, so neither its type nor its length (RFC 9110, 8.6)
        else []
    )
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers]
    return {"type": "http.response.start", "status": status, "headers": raw_headers}


Answer = tuple[int, Iterable[tuple[str, str]], bytes]  # status, extra headers, JSON body of a hot endpoint


class Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


class HotEndpoint:
    """The base of the two plain ASGI endpoints on the hot paths (recordCallEvents, getCampaignStats).

    What they share, in one place: the method check (405 with Allow), every exception rendered by the
    one mapper (as_api_error, with the route's own failure class for a 500), the request's headers
    (`header`; `api_key`, the x-api-key value read by accounts.keys.presented), the body under the size limit
    (`read_body`) and the JSON answer. A subclass sets `method` and `unexpected` and writes

        async def answer(self, scope, receive) -> Answer  # (status, headers, body); raises on error

    Its cost is that of a hand-written endpoint: one await for `answer`, the two sends in line.
    """

    method: ClassVar[str] = "GET"
    unexpected: ClassVar[type[InternalError]] = InternalError  # the 500 this route answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request: `answer`'s response, or the error any exception maps to."""
        try:
            if scope["method"] != self.method:
                raise MethodNotAllowed((self.method,))
            status, headers, body = await self.answer(scope, receive)
        except Disconnected:
            return
        except Exception as exc:
            status, headers, body = self.failure(exc, scope)
        await send(_json_start(status, headers, body))
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """The response to a request with the right method; raise for an error (the subclass's part)."""
        raise NotImplementedError

    def failure(self, exc: Exception, scope: Scope) -> Answer:
        """The response for an exception of this route, through the one mapper."""
        status, headers, envelope = rendered(as_api_error(exc, scope, self.unexpected))
        return status, headers.items(), orjson.dumps(envelope)

    @staticmethod
    def header(scope: Scope, name: bytes) -> bytes | None:
        """The first value of the request header `name` (lower case, as ASGI gives it), None if absent."""
        for key, value in scope["headers"]:
            if key == name:
                return bytes(value)
        return None

    @classmethod
    def api_key(cls, scope: Scope) -> str:
        """The API key the request presents (its first x-api-key header, read by the one parser,
        accounts.keys.presented); "" when there is none."""
        return presented(cls.header(scope, HEADER))

    @staticmethod
    async def read_body(receive: Receive) -> bytes | PayloadTooLarge:
        """The whole request body; over the size limit (the Dispatcher's receive raises), the error,
        returned for the endpoint to show when its turn comes (a key error is told first).

        Raises Disconnected when the client leaves first.
        """
        chunks = []
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Disconnected()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)
        except PayloadTooLarge as exc:
            return exc


async def _answer_error(request: Request, exc: Exception) -> JSONResponse:
    return error_json(as_api_error(exc, request.scope))


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, in the seed's envelope, through as_api_error.

    One registration per class the framework catches itself: ApiError, RequestValidationError,
    HTTPException and DBAPIError where it raises them, Exception (its outermost middleware) for the rest.
    """
    for handled in (ApiError, RequestValidationError, StarletteHTTPException, DBAPIError, Exception):
        app.add_exception_handler(handled, _answer_error)


async def _raw_body(request: Request) -> bytes:
    """The whole body. A client that leaves before sending it gets a 400 nobody reads, not a 500 and
    an unexpected-error log line (a platform timing out on a webhook does this)."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise ValidationFailed("body: the client closed the connection before sending it all") from None


RawBody = Annotated[bytes, Depends(_raw_body)]


class Dispatcher:
    """The ASGI entry point: the hot paths (stats, events) first, then the framework; a body-size limit;
    one access line per HTTP request (docs/deployment.md, Logs) unless the app's settings
    (`api.state.settings.access_log`, CALLSTATS_ACCESS_LOG) turn it off; each request counted and timed
    in `metrics` (by route template, method and status) when given."""

    def __init__(
        self,
        api: FastAPI,
        stats: AsgiApp,
        stats_prefix: str,
        max_body_bytes: int,
        hot: dict[str, AsgiApp],
        prefixed: dict[str, tuple[AsgiApp, str]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.api = api
        self.stats = stats
        self.stats_prefix = stats_prefix
        self.stats_route = stats_prefix + "{campaignId}"
        self.max_body_bytes = max_body_bytes
        self.hot = hot  # exact path -> endpoint served before the framework
        # path prefix -> (endpoint, route template) served before the framework (the carriers' webhooks)
        self.prefixed = prefixed or {}
        self.access_log: bool = getattr(getattr(api.state, "settings", None), "access_log", True)
        self.access = logs.AccessLog()  # lines waiting for their flush (logs.AccessLog)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI connection; count an HTTP request and keep its access line for the next flush."""
        if scope["type"] != "http":
            await self.api(scope, receive, self._flushing(send) if scope["type"] == "lifespan" else send)
        elif self.access_log or self.metrics is not None:
            await self._observed(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    def _flushing(self, send: Send) -> Send:
        """`send` for the ASGI lifespan: the waiting access lines are written before the server
        hears that shutdown is complete (and the process may end)."""

        async def flushing(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown."):
                self.access.flush()
            await send(message)

        return flushing

    async def _observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request, then count it and keep its access line, whatever happened.

        The request path only appends a tuple (logs.AccessLog renders and writes later, in batches) and
        moves two cached metric series (Metrics.request_done); `sent` is a plain function handing back
        send's awaitable, so no coroutine is added per message.
        """
        started = perf_counter()
        status: int | None = None

        def sent(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        route: str | None = None
        try:
            route = await self._http(scope, receive, sent)
        finally:
            ended = perf_counter()
            if self.metrics is not None:
                self.metrics.request_done(route, scope["method"], status, ended - started)
            if self.access_log:
                campaign_id = self._campaign_id(scope, route) if route is not None else None
                self.access.add(
                    (scope["method"], route, status, started, ended, request_id(scope), campaign_id)
                )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> str | None:
        """Serve one HTTP request; the template of the route that answered it (None: no route matched)."""
        if scope["path"].startswith(self.stats_prefix):
            await self.stats(scope, receive, send)
            return self.stats_route
        endpoint, route = self._hot_route(scope["path"])
        if scope["method"] in ("POST", "PUT", "PATCH"):
            if self._declared_length(scope) > self.max_body_bytes:
                await error_json(PayloadTooLarge(self._too_large()))(scope, receive, send)
                return route
            receive = self._limited(receive)
        if endpoint is not None:
            await endpoint(scope, receive, send)  # answers every error itself, in the envelope
            return route
        await self._framework(scope, receive, send)
        return _route_template(scope)

    def _hot_route(self, path: str) -> tuple[AsgiApp | None, str | None]:
        """The endpoint served before the framework for `path` and its route template, or (None, None)."""
        endpoint = self.hot.get(path)
        if endpoint is not None:
            return endpoint, path
        for prefix, (prefixed, template) in self.prefixed.items():
            if path.startswith(prefix):
                return prefixed, template
        return None, None

    def _campaign_id(self, scope: Scope, route: str) -> str | None:
        """The campaign id in the path of a route that names one, when it has a campaign id's shape."""
        if route is self.stats_route:  # the stats endpoint has no path_params: the path's tail
            raw = scope["path"][len(self.stats_prefix) :]
        elif "{campaignId}" in route:
            raw = scope.get("path_params", {}).get("campaignId")
        else:
            return None
        return raw if isinstance(raw, str) and _campaign_id_shape(raw) else None

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an HTTP request with the framework; no exception escapes to the server.

        Starlette's outermost middleware answers an unexpected error through our handler (which logs
        it) and then raises it again; an ASGI server that sees it closes the keep-alive connection
        without a word (uvicorn also logs its traceback). Here it stops: when the answer went out
        the connection stays usable, and when none started, this sends the 500 itself.
        """
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.api(scope, receive, tracked)
        except Exception as exc:
            if not started:
                await error_json(as_api_error(exc, scope))(scope, receive, send)

    def _too_large(self) -> str:
        return f"Request body over the limit of {self.max_body_bytes} bytes"

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return int(value) if value.isdigit() else 0
        return 0

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                raise PayloadTooLarge(self._too_large())
            return message

        return limited


def _route_template(scope: Scope) -> str | None:
    """The path template of the framework route that served `scope` (a mount's, for static files)."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    params = scope.get("path_params")
    if params is None:
        return None
    if not params:  # a plain route without parameters (/openapi.json, /docs): its path is its template
        return str(scope["path"])
    return f"{scope.get('root_path', '')}/{{path}}"  # a mount matched (FastAPI names no route for it)
